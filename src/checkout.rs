//! Finding the developer's checkout at run time: where `.deps`, `models/` and
//! `samples/` are for a binary or plugin run from `target/`, or a test. The
//! last step of [`crate::locate`]'s search; nothing of the build machine is
//! compiled in, so an installed gendr never looks at a build path.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Checkouts holding the running code, nearest first: the folders above the
/// executable or shared library this code is in (`target/<profile>/gendr`,
/// `target/<profile>/libgstgendrsr.so`, `…/deps/test-…`) that look like a
/// gendr checkout (`models/presets.json` and `ORT_VERSION` in them).
pub fn roots() -> Vec<PathBuf> {
    let Some(module) = this_module() else {
        return Vec::new();
    };
    module
        .ancestors()
        .skip(1)
        .take(4)
        .filter(|dir| is_checkout(dir))
        .map(Path::to_path_buf)
        .collect()
}

fn is_checkout(dir: &Path) -> bool {
    dir.join("models/presets.json").is_file() && dir.join("ORT_VERSION").is_file()
}

/// The file this code was loaded from: the plugin's `.so` when GStreamer
/// loaded it (the executable is then `gst-launch-1.0`), else the executable.
fn this_module() -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr only reads the address, which is a function of this
    // module, and fills `info`; on success dli_fname is a NUL-terminated
    // string owned by the loader that lives while the module is loaded.
    let found = unsafe { libc::dladdr(this_module as *const libc::c_void, info.as_mut_ptr()) };
    if found != 0 {
        // SAFETY: dladdr returned non-zero, so it filled `info`.
        let info = unsafe { info.assume_init() };
        if !info.dli_fname.is_null() {
            // SAFETY: see above: a valid C string while the module is loaded.
            let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
            if path.is_absolute() {
                return Some(path);
            }
            // A library loaded through a relative path (GST_PLUGIN_PATH=target/release)
            // is named as dlopen was given it, from the folder the process
            // started in; the main program's bare argv[0] is left to current_exe.
            let is_library =
                Some(path.as_path()) != std::env::args_os().next().as_deref().map(Path::new);
            if is_library && path.components().count() > 1 {
                return std::env::current_dir().ok().map(|dir| dir.join(path));
            }
        }
    }
    std::env::current_exe().ok()
}
