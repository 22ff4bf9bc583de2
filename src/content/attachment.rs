//! Which attachments may pass (seed 002): `.txt`, `.pdf`, `.doc`/`.docx`,
//! `.jpg`/`.jpeg`, `.gif`, `.tif`/`.tiff`, `.bmp`, `.png`, with a content type
//! that matches the extension, content that matches the type, and a decoded
//! size within the limit.

use std::fmt;

/// Extension → the content types that go with it.
const ALLOWED: &[(&str, &[&str])] = &[
    ("txt", &["text/plain"]),
    ("pdf", &["application/pdf"]),
    ("doc", &["application/msword"]),
    ("docx", &["application/vnd.openxmlformats-officedocument.wordprocessingml.document"]),
    ("jpg", &["image/jpeg", "image/pjpeg", "image/jpg"]),
    ("jpeg", &["image/jpeg", "image/pjpeg", "image/jpg"]),
    ("gif", &["image/gif"]),
    ("tif", &["image/tiff"]),
    ("tiff", &["image/tiff"]),
    ("bmp", &["image/bmp", "image/x-bmp", "image/x-ms-bmp"]),
    ("png", &["image/png", "image/x-png"]),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Extension or content type not on the list, or not matching each other.
    Type,
    /// Decoded size over the limit (the limit, in bytes).
    TooLarge(u64),
    /// The bytes are not what the type says (a renamed executable).
    Content,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Type => f.write_str("file type not allowed"),
            Reason::TooLarge(max) if max % (1024 * 1024) == 0 => {
                write!(f, "larger than {} MB", max / (1024 * 1024))
            }
            Reason::TooLarge(max) => write!(f, "larger than {max} bytes"),
            Reason::Content => f.write_str("content does not match its file type"),
        }
    }
}

/// The extension as Windows sees it: trailing dots and spaces do not count.
pub fn extension(name: &str) -> Option<String> {
    let name = name.trim_end_matches(['.', ' ']);
    let (_, ext) = name.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

/// Judges one attachment. `names` are every file name the part gives
/// (Content-Disposition `filename`, Content-Type `name`): each must pass, since
/// mail clients differ in which one they show and save under. A part without a
/// name passes only as an inline image of an allowed type.
pub fn judge(names: &[&str], content_type: &str, data: &[u8], max: u64) -> Result<(), Reason> {
    let ct = content_type.trim().to_ascii_lowercase();
    let types_for = |ext: &str| ALLOWED.iter().find(|(e, _)| *e == ext).map(|(_, t)| *t);
    if names.is_empty() {
        let image = ["image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff"];
        if !image.contains(&ct.as_str()) {
            return Err(Reason::Type);
        }
    }
    for name in names {
        let ok = extension(name).and_then(|e| types_for(&e)).is_some_and(|types| types.contains(&ct.as_str()));
        if !ok {
            return Err(Reason::Type);
        }
    }
    if data.len() as u64 > max {
        return Err(Reason::TooLarge(max));
    }
    if !content_matches(&ct, data) {
        return Err(Reason::Content);
    }
    Ok(())
}

/// Magic numbers of the allowed types.
fn content_matches(ct: &str, data: &[u8]) -> bool {
    let executable = data.starts_with(b"MZ") || data.starts_with(b"\x7fELF");
    match ct {
        "text/plain" => !executable && !data.iter().take(8192).any(|&b| b == 0),
        "application/pdf" => data.windows(5).take(1024).any(|w| w == b"%PDF-"),
        "application/msword" => data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => data.starts_with(b"PK\x03\x04"),
        "image/jpeg" | "image/pjpeg" | "image/jpg" => data.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/gif" => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        "image/tiff" => data.starts_with(b"II*\0") || data.starts_with(b"MM\0*"),
        "image/bmp" | "image/x-bmp" | "image/x-ms-bmp" => data.starts_with(b"BM"),
        "image/png" | "image/x-png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.7\n%...";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n....";

    #[test]
    fn allows_listed_types_with_matching_content() {
        assert_eq!(judge(&["invoice.pdf"], "application/pdf", PDF, 100), Ok(()));
        assert_eq!(judge(&["Invoice.PDF"], "Application/PDF", PDF, 100), Ok(()));
        assert_eq!(judge(&["a.png", "a.png"], "image/png", PNG, 100), Ok(()));
        assert_eq!(judge(&[], "image/png", PNG, 100), Ok(()));
        assert_eq!(judge(&["notes.txt"], "text/plain", b"hello", 100), Ok(()));
    }

    #[test]
    fn refuses_the_rest() {
        assert_eq!(judge(&["invoice.pdf.exe"], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["setup.exe"], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["a.pdf"], "application/octet-stream", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["a.png"], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["a.pdf", "a.exe"], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["a.exe."], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["noext"], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&[], "application/pdf", PDF, 100), Err(Reason::Type));
        assert_eq!(judge(&["page.html"], "text/html", b"<p>", 100), Err(Reason::Type));
        assert_eq!(judge(&["invoice.pdf"], "application/pdf", b"MZ\x90\0", 100), Err(Reason::Content));
        assert_eq!(judge(&["a.pdf"], "application/pdf", PDF, 5), Err(Reason::TooLarge(5)));
        assert_eq!(Reason::TooLarge(10 * 1024 * 1024).to_string(), "larger than 10 MB");
    }

    #[test]
    fn size_limit_is_inclusive() {
        let data = [b"%PDF-".as_slice(), &[b'x'; 95]].concat();
        assert_eq!(judge(&["a.pdf"], "application/pdf", &data, 100), Ok(()));
        let data = [b"%PDF-".as_slice(), &[b'x'; 96]].concat();
        assert_eq!(judge(&["a.pdf"], "application/pdf", &data, 100), Err(Reason::TooLarge(100)));
    }
}
