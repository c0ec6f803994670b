//! A picture of a directory tree taken without following symlinks or
//! opening special files, to tell exactly what a call changed.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Bytes of a regular file kept in the picture (the rest is its size).
const KEEP: u64 = 128 * 1024;
const MAX_DEPTH: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File { len: u64, head: Vec<u8> },
    Dir(BTreeMap<Vec<u8>, Node>),
    Symlink(Vec<u8>),
    Fifo,
    Socket,
    Device,
}

/// The tree at `path`, or `None` when nothing is there.
pub fn take(path: &Path) -> Option<Node> {
    take_at(path, 0)
}

fn take_at(path: &Path, depth: usize) -> Option<Node> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let ft = meta.file_type();
    Some(if ft.is_symlink() {
        Node::Symlink(
            std::fs::read_link(path)
                .map(|t| t.as_os_str().as_bytes().to_vec())
                .unwrap_or_default(),
        )
    } else if ft.is_dir() {
        let mut children = BTreeMap::new();
        if depth < MAX_DEPTH
            && let Ok(rd) = std::fs::read_dir(path)
        {
            for e in rd.flatten() {
                if let Some(node) = take_at(&e.path(), depth + 1) {
                    children.insert(e.file_name().as_bytes().to_vec(), node);
                }
            }
        }
        Node::Dir(children)
    } else if ft.is_fifo() {
        Node::Fifo
    } else if ft.is_socket() {
        Node::Socket
    } else if ft.is_file() {
        use std::io::Read;
        let mut head = Vec::new();
        if let Ok(f) = std::fs::File::open(path) {
            let _ = f.take(KEEP).read_to_end(&mut head);
        }
        Node::File {
            len: meta.len(),
            head,
        }
    } else {
        Node::Device
    })
}

/// The entries of directory `dir` (empty when it is not a directory).
pub fn entries(dir: &Path) -> BTreeMap<Vec<u8>, Node> {
    match take(dir) {
        Some(Node::Dir(children)) => children,
        _ => BTreeMap::new(),
    }
}

/// Every regular file named `name` under `root` (symlinks not followed).
pub fn files_named(root: &Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    files_named_at(root, name.as_bytes(), out, 0)
}

fn files_named_at(dir: &Path, name: &[u8], out: &mut Vec<std::path::PathBuf>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            files_named_at(&e.path(), name, out, depth + 1);
        } else if ft.is_file() && e.file_name().as_bytes() == name {
            out.push(e.path());
        }
    }
}
