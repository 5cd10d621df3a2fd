//! A component skill as `deskhand skill new --component` scaffolds it: valid
//! for the Agent Skills reference validator, and its evals pick it among the
//! bundled skills. (Building and running it: `tests/cli/component_skill.rs`.)

use deskhand_runtime::skill_creator;
use deskhand_runtime::skills::{self, Entry, SkillSource, component};

use crate::skills::reference_verdict;

#[test]
fn a_scaffolded_component_skill_is_valid_and_its_evals_pick_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("skills").join("word-count");
    component::scaffold(&dir, "word-count").unwrap();
    let (valid, said) = reference_verdict(&dir);
    assert!(valid, "{said}");

    let found = skills::discover(tmp.path(), Some(tmp.path()));
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    let skill = found.skills.iter().find(|s| s.name == "word-count").unwrap();
    assert_eq!(skill.source, SkillSource::User);
    assert!(matches!(&skill.entry, Entry::Component { path, operation }
        if path.ends_with("scripts/word-count.wasm") && operation == "run"));
    let checks = skill_creator::check_evals(skill, &found.skills, tmp.path()).unwrap();
    assert_eq!(checks.len(), 3);
    assert!(checks.iter().all(|c| c.passed), "{checks:?}");
}
