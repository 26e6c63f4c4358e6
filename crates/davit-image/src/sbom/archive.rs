//! Replay the layers of a `docker save` archive and keep the files catalogers need.
//!
//! A `docker save` tar holds `manifest.json` (config and layer order) and one tar per layer
//! (legacy `<id>/layer.tar` or OCI `blobs/sha256/<hex>`, possibly gzip-compressed). The final
//! filesystem is the layers applied in order, where a `.wh.<name>` entry deletes `<name>` from
//! the layers below and `.wh..wh..opq` empties its directory (OCI image spec, "Whiteouts"). Only
//! paths a cataloger asks for are kept in memory, with their history across layers so a package
//! can be attributed to the layer that introduced it. Uncompressed layers are read with seeks
//! over file data, so a large image costs little more than reading its tar headers.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read image archive {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("image archive {path} is not a docker save / OCI archive: {message}")]
    Format { path: String, message: String },
}

/// One version of a kept file: the layer that wrote it and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileVersion {
    pub layer: usize,
    pub data: Vec<u8>,
}

/// The kept files of the final filesystem, with history.
#[derive(Debug, Default)]
pub struct ImageFiles {
    /// `sha256:` of the config blob: the image ID docker reports and the registry manifest's
    /// `config.digest`.
    pub image_id: String,
    /// Layer diff ids, base first.
    pub layers: Vec<String>,
    /// Path without leading `/` -> versions, oldest first; the last one is what the image has.
    pub files: BTreeMap<String, Vec<FileVersion>>,
    pub config: serde_json::Value,
}

impl ImageFiles {
    /// The current content of a file.
    pub fn current(&self, path: &str) -> Option<&FileVersion> {
        self.files.get(path).and_then(|v| v.last())
    }
}

/// Files larger than this are not kept: no package database is that big, a huge file is data.
const MAX_KEPT: u64 = 64 << 20;

/// A window of a file, so that an inner layer tar can be read (and seeked) in place.
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(left) as usize;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => n as i64,
            SeekFrom::Current(d) => self.pos as i64 + d,
            SeekFrom::End(d) => self.len as i64 + d,
        };
        if new < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = new as u64;
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        Ok(self.pos)
    }
}

fn normalize(path: &[u8]) -> String {
    let s = String::from_utf8_lossy(path);
    let s = s.trim_start_matches("./").trim_start_matches('/');
    s.trim_end_matches('/').to_string()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    layers: Vec<String>,
}

/// Read a `docker save` archive, keeping every file for which `keep(path)` is true.
pub fn read(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<ImageFiles, ArchiveError> {
    let p = path.display().to_string();
    let io_err = |source| ArchiveError::Io {
        path: p.clone(),
        source,
    };
    let fmt_err = |message: String| ArchiveError::Format {
        path: p.clone(),
        message,
    };
    let file = File::open(path).map_err(io_err)?;

    // Pass 1: where each member of the outer tar lives.
    let mut members: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    {
        let mut outer = tar::Archive::new(file.try_clone().map_err(io_err)?);
        for e in outer.entries_with_seek().map_err(io_err)? {
            let mut e = e.map_err(io_err)?;
            let name = normalize(&e.path_bytes());
            let (pos, size) = (e.raw_file_position(), e.size());
            if name == "manifest.json" || (name.ends_with(".json") && size < (4 << 20)) {
                let mut buf = Vec::with_capacity(size as usize);
                e.read_to_end(&mut buf).map_err(io_err)?;
                small.insert(name.clone(), buf);
            }
            members.insert(name, (pos, size));
        }
    }
    let manifest = small
        .get("manifest.json")
        .ok_or_else(|| fmt_err("manifest.json is missing".into()))?;
    let manifest: Vec<ManifestEntry> =
        serde_json::from_slice(manifest).map_err(|e| fmt_err(format!("manifest.json: {e}")))?;
    let m = manifest
        .first()
        .ok_or_else(|| fmt_err("manifest.json lists no image".into()))?;
    let config_bytes = match small.get(&normalize(m.config.as_bytes())) {
        Some(b) => b.clone(),
        None => {
            // OCI blobs have no .json suffix: read the config member explicitly.
            let (pos, size) = *members
                .get(&normalize(m.config.as_bytes()))
                .ok_or_else(|| fmt_err(format!("config {} is missing", m.config)))?;
            let mut s = slice(&file, pos, size).map_err(io_err)?;
            let mut b = Vec::new();
            s.read_to_end(&mut b).map_err(io_err)?;
            b
        }
    };
    let image_id = format!("sha256:{:x}", Sha256::digest(&config_bytes));
    let config: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| fmt_err(format!("image config: {e}")))?;
    let diff_ids: Vec<String> = config
        .pointer("/rootfs/diff_ids")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != m.layers.len() {
        return Err(fmt_err(format!(
            "config lists {} layers, manifest {}",
            diff_ids.len(),
            m.layers.len()
        )));
    }

    // Pass 2: replay layers in order.
    let mut out = ImageFiles {
        image_id,
        layers: diff_ids,
        files: BTreeMap::new(),
        config,
    };
    for (idx, layer) in m.layers.iter().enumerate() {
        let (pos, size) = *members
            .get(&normalize(layer.as_bytes()))
            .ok_or_else(|| fmt_err(format!("layer {layer} is missing")))?;
        let mut s = slice(&file, pos, size).map_err(io_err)?;
        let mut magic = [0u8; 4];
        let n = s.read(&mut magic).map_err(io_err)?;
        s.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let changes = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(1 << 16, s));
            read_layer(tar::Archive::new(gz).entries().map_err(io_err)?, keep)
        } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(fmt_err(format!(
                "layer {layer} is zstd-compressed, which is not supported"
            )));
        } else {
            let mut a = tar::Archive::new(s);
            read_layer(a.entries_with_seek().map_err(io_err)?, keep)
        }
        .map_err(|e| fmt_err(format!("layer {layer}: {e}")))?;
        apply(&mut out.files, idx, changes);
    }
    Ok(out)
}

fn slice(file: &File, start: u64, len: u64) -> io::Result<Slice> {
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::Start(start))?;
    Ok(Slice {
        file: f,
        start,
        len,
        pos: 0,
    })
}

/// What one layer does to the kept files.
#[derive(Default)]
struct Changes {
    /// Paths deleted by `.wh.<name>` (with everything below them).
    deleted: Vec<String>,
    /// Directories made opaque by `.wh..wh..opq` (everything below them from lower layers).
    opaque: Vec<String>,
    /// Kept regular files, and kept paths replaced by something that is not a regular file.
    written: Vec<(String, Option<Vec<u8>>)>,
}

fn read_layer<R: Read>(
    entries: tar::Entries<'_, R>,
    keep: &dyn Fn(&str) -> bool,
) -> io::Result<Changes> {
    let mut ch = Changes::default();
    for e in entries {
        let mut e = e?;
        let path = normalize(&e.path_bytes());
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d, b),
            None => ("", path.as_str()),
        };
        if let Some(target) = base.strip_prefix(".wh.") {
            if target == ".wh..opq" {
                ch.opaque.push(dir.to_string());
            } else if dir.is_empty() {
                ch.deleted.push(target.to_string());
            } else {
                ch.deleted.push(format!("{dir}/{target}"));
            }
            continue;
        }
        if !keep(&path) {
            continue;
        }
        let et = e.header().entry_type();
        if et.is_file() && e.size() <= MAX_KEPT {
            let mut buf = Vec::with_capacity(e.size() as usize);
            e.read_to_end(&mut buf)?;
            ch.written.push((path, Some(buf)));
        } else if !et.is_dir() {
            ch.written.push((path, None));
        }
    }
    Ok(ch)
}

fn remove_under(files: &mut BTreeMap<String, Vec<FileVersion>>, dir: &str, include_self: bool) {
    if dir.is_empty() {
        // Opaque root: nothing from lower layers survives.
        files.clear();
        return;
    }
    if include_self {
        files.remove(dir);
    }
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = files
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        files.remove(&k);
    }
}

fn apply(files: &mut BTreeMap<String, Vec<FileVersion>>, layer: usize, ch: Changes) {
    // Whiteouts hide lower layers only, so they apply before this layer's own files.
    for d in &ch.deleted {
        remove_under(files, d, true);
    }
    for d in &ch.opaque {
        remove_under(files, d, false);
    }
    for (path, data) in ch.written {
        match data {
            Some(data) => files
                .entry(path)
                .or_default()
                .push(FileVersion { layer, data }),
            None => {
                files.remove(&path);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a `docker save`-shaped archive from layers of (path, Some(content) | None=dir).
    pub fn fake_image(dir: &Path, layers: &[Vec<(&str, Option<&str>)>]) -> std::path::PathBuf {
        let mut outer = tar::Builder::new(Vec::new());
        let mut names = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let mut b = tar::Builder::new(Vec::new());
            for (p, content) in l {
                let mut h = tar::Header::new_gnu();
                match content {
                    Some(c) => {
                        h.set_size(c.len() as u64);
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_mode(0o644);
                        h.set_cksum();
                        b.append_data(&mut h, p, c.as_bytes()).unwrap();
                    }
                    None => {
                        h.set_size(0);
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_mode(0o755);
                        h.set_cksum();
                        b.append_data(&mut h, p, &[][..]).unwrap();
                    }
                }
            }
            let bytes = b.into_inner().unwrap();
            diff_ids.push(format!("sha256:{:x}", Sha256::digest(&bytes)));
            let name = format!("l{i}/layer.tar");
            append(&mut outer, &name, &bytes);
            names.push(name);
        }
        let config = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = serde_json::to_vec(&config).unwrap();
        append(&mut outer, "cfg.json", &config);
        let manifest =
            serde_json::json!([{"Config": "cfg.json", "RepoTags": null, "Layers": names}]);
        append(
            &mut outer,
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap(),
        );
        let path = dir.join("image.tar");
        std::fs::write(&path, outer.into_inner().unwrap()).unwrap();
        path
    }

    fn append(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
        let dir = tempfile::tempdir().unwrap();
        let img = fake_image(
            dir.path(),
            &[
                vec![
                    ("a/keep.txt", Some("1")),
                    ("a/gone.txt", Some("1")),
                    ("b/", None),
                    ("b/x.txt", Some("1")),
                    ("c/y.txt", Some("1")),
                    ("d/z.txt", Some("1")),
                ],
                vec![
                    ("a/.wh.gone.txt", Some("")),
                    ("./b/.wh..wh..opq", Some("")),
                    ("b/new.txt", Some("2")),
                    (".wh.c", Some("")),
                    ("d/z.txt", Some("2")),
                ],
                // Re-created after deletion: only the new version counts.
                vec![("c/y.txt", Some("3"))],
            ],
        );
        let files = read(&img, &|_| true).unwrap();
        let got: Vec<(String, Vec<(usize, String)>)> = files
            .files
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter()
                        .map(|f| (f.layer, String::from_utf8(f.data.clone()).unwrap()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/keep.txt".into(), vec![(0, "1".into())]),
                ("b/new.txt".into(), vec![(1, "2".into())]),
                ("c/y.txt".into(), vec![(2, "3".into())]),
                ("d/z.txt".into(), vec![(0, "1".into()), (1, "2".into())]),
            ]
        );
        assert_eq!(files.layers.len(), 3);
        assert!(files.image_id.starts_with("sha256:"));
    }
}
