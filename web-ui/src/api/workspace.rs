//! The workspace around the runs: its skills and folders for the task form,
//! the folder picker's listings, and the instruction and memory files the
//! page edits.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::blocking;
use super::error::{ApiError, ApiResult};
use crate::App;
use crate::files;

pub(super) async fn state(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    let config_dir = app.options.config_dir.clone();
    let state = blocking(move || {
        let discovery = deskhand_runtime::skills::discover(&root, config_dir.as_deref());
        let skills: Vec<Value> =
            discovery
                .skills
                .iter()
                .map(|s| json!({"name": s.name, "description": s.description}))
                .chain(discovery.untrusted.iter().map(
                    |(s, why)| json!({"name": s.name, "description": s.description, "untrusted": why.to_string()}),
                ))
                .collect();
        let mut folders = Vec::new();
        for sub in ["projects", "context"] {
            folders.push(sub.to_owned());
            if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy()))
                    .collect();
                names.sort();
                folders.extend(names);
            }
        }
        json!({"workspace": root.display().to_string(), "skills": skills, "folders": folders})
    })
    .await?;
    Ok(Json(state))
}

#[derive(Deserialize)]
pub(super) struct FolderQuery {
    #[serde(default)]
    path: String,
}

/// The folders in one folder, for the page's folder picker: the workspace
/// when `path` is empty, a folder in it by its relative path, or any folder
/// by its absolute path (a grant may lie outside the workspace). Names of
/// folders only, never of files; hidden ones and links left out.
pub(super) async fn folders(State(app): State<Arc<App>>, Query(q): Query<FolderQuery>) -> ApiResult<Json<Value>> {
    let root = app.root.clone();
    Ok(Json(blocking(move || list_folders(&root, &q.path)).await??))
}

/// Folders listed at most; a longer listing says it was cut.
const MAX_LISTED: usize = 1000;

fn list_folders(root: &Path, asked: &str) -> Result<Value, ApiError> {
    let asked = asked.trim();
    let raw = Path::new(asked);
    if raw.components().any(|c| c == Component::ParentDir) {
        return Err(ApiError::bad_request(format!(
            "{asked:?} holds `..`; name the folder itself (the picker's Up goes to the parent)"
        )));
    }
    let dir = if asked.is_empty() {
        root.to_path_buf()
    } else if raw.is_absolute() {
        raw.to_path_buf()
    } else {
        root.join(raw)
    };
    let dir = dir
        .canonicalize()
        .map_err(|_| ApiError::not_found(format!("there is no folder {asked:?}")))?;
    if !dir.is_dir() {
        return Err(ApiError::unprocessable(format!("{asked:?} is a file, not a folder")));
    }
    let state = root.join(deskhand_runtime::workspace::STATE_DIR);
    if dir.starts_with(&state) {
        return Err(ApiError::not_found(
            "deskhand's own records (.deskhand/) are not a folder to grant",
        ));
    }
    let shown = |p: &Path| match p.strip_prefix(root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => p.display().to_string(),
    };
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| ApiError::unprocessable(format!("{} cannot be read: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    let truncated = names.len() > MAX_LISTED;
    names.truncate(MAX_LISTED);
    Ok(json!({
        "path": shown(&dir),
        "inside": dir.starts_with(root),
        "parent": dir.parent().map(shown),
        "folders": names,
        "truncated": truncated,
    }))
}

fn named_file(app: &App, name: &str) -> Option<PathBuf> {
    match name {
        "instructions" => Some(app.root.join(deskhand_runtime::workspace::INSTRUCTIONS_FILE)),
        "memory" => Some(app.root.join(deskhand_runtime::workspace::MEMORY_FILE)),
        _ => None,
    }
}

/// The largest instruction or memory file the page edits.
const NAMED_FILE_BYTES: u64 = 1 << 20;

pub(super) async fn read_file(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> ApiResult<Json<Value>> {
    let path = named_file(&app, &name)
        .ok_or_else(|| ApiError::not_found("only the instruction and memory files are served"))?;
    let shown = path.display().to_string();
    let text = blocking(move || files::read_named(&path, NAMED_FILE_BYTES))
        .await?
        .map_err(ApiError::unprocessable)?
        .unwrap_or_default();
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(Json(json!({"path": shown, "text": text, "sha256": sha})))
}

#[derive(Deserialize)]
pub(super) struct FileWrite {
    text: String,
    base_sha256: String,
}

/// Saves the instruction or memory file, only if nobody changed it since it was loaded.
pub(super) async fn write_file(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Json(w): Json<FileWrite>,
) -> ApiResult<Json<Value>> {
    let path = named_file(&app, &name)
        .ok_or_else(|| ApiError::not_found("only the instruction and memory files can be edited here"))?;
    let sha = blocking(move || {
        let current = files::read_named(&path, NAMED_FILE_BYTES).map_err(ApiError::unprocessable)?;
        if hex::encode(Sha256::digest(current.unwrap_or_default().as_bytes())) != w.base_sha256 {
            return Err(ApiError::conflict(
                "the file changed since you opened it (another edit or a run); reload it, then make your change again",
            ));
        }
        let tmp = path.with_extension("md.deskhand-tmp");
        let written = std::fs::write(&tmp, w.text.as_bytes())
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ApiError::internal(format!("could not save {}: {e}", path.display()))
        })?;
        Ok(hex::encode(Sha256::digest(w.text.as_bytes())))
    })
    .await??;
    Ok(Json(json!({"sha256": sha})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picker_lists_folders_only_inside_and_outside_the_workspace_but_not_deskhands_records() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().canonicalize().unwrap();
        let root = outside.join("ws");
        for dir in [
            "projects/b",
            "projects/A",
            "projects/.hidden",
            ".deskhand/trash",
            "context",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("projects/file.txt"), "not a folder").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, root.join("projects/link")).unwrap();

        let top = list_folders(&root, "").unwrap();
        assert_eq!(top["path"], "");
        assert_eq!(top["folders"], json!(["context", "projects"]));
        assert_eq!(
            top["parent"],
            json!(outside.display().to_string()),
            "Up leaves the workspace"
        );

        let projects = list_folders(&root, "projects").unwrap();
        assert_eq!(projects["folders"], json!(["A", "b"]), "no file, hidden folder or link");
        assert_eq!(projects["parent"], "");

        let away = list_folders(&root, &outside.display().to_string()).unwrap();
        assert_eq!(away["inside"], false);
        assert_eq!(away["folders"], json!(["ws"]));

        for (bad, words) in [
            ("projects/../..", "`..`"),
            ("nowhere", "there is no folder"),
            ("projects/file.txt", "a file, not a folder"),
            (".deskhand/trash", "deskhand's own records"),
        ] {
            let err = list_folders(&root, bad).unwrap_err();
            assert!(format!("{err:?}").contains(words), "{bad}: {err:?}");
        }
    }
}
