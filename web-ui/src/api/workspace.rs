//! The workspace around the runs: its skills and folders for the task form,
//! and the instruction and memory files the page edits.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
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
        let discovery =
            deskhand_runtime::skills::discover(&root, config_dir.as_ref().map(|d| d.join("skills")).as_deref());
        let skills: Vec<Value> = discovery
            .skills
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description}))
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
