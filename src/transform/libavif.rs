//! What the AVIF encoder and decoder share over libavif's C API (`--features aom`): a guard
//! that frees what libavif allocated on every path out, and its result codes as errors.

use libavif_sys as sys;

/// A value libavif allocated, freed by its closure when dropped.
pub struct Owned<T, F: FnMut(&mut T)>(pub T, pub F);

impl<T, F: FnMut(&mut T)> Drop for Owned<T, F> {
    fn drop(&mut self) {
        (self.1)(&mut self.0);
    }
}

/// `Ok` for `AVIF_RESULT_OK`, else libavif's own words for the result.
pub fn check(result: sys::avifResult) -> Result<(), String> {
    if result == sys::AVIF_RESULT_OK {
        return Ok(());
    }
    // SAFETY: libavif returns a static NUL-terminated string for every result code.
    let text = unsafe { std::ffi::CStr::from_ptr(sys::avifResultToString(result)) };
    Err(text.to_string_lossy().into_owned())
}
