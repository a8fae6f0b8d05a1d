//! What the fuzz targets share: how an input's bytes become HTTP answers and requests.
//!
//! An input holds one or more answers separated by NUL bytes (JSON never holds a raw NUL).
//! An answer is `name: value` header lines, a blank line, then the body; an answer without a
//! blank line is all body. Seeds are written in this form so they stay readable.

use http::{HeaderMap, HeaderName, HeaderValue};
use scansync::http::HttpResponse;

/// Header lines (`name: value`, one a line) → a header map. Lines that are no header a
/// server could send (bad name or value bytes) are left out, as an HTTP client would refuse
/// them before scansync saw them.
pub fn headers(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim_ascii()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// One answer: its header block and its body.
pub fn split_answer(chunk: &[u8]) -> (&[u8], &[u8]) {
    match chunk.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&chunk[..i], &chunk[i + 2..]),
        None => (&[], chunk),
    }
}

/// The answers of an input, at most `max` of them, as the HTTP layer hands them to a
/// connector (status 200: errors never reach the parsers).
pub fn responses(data: &[u8], url: &str, max: usize) -> Vec<HttpResponse> {
    data.split(|&b| b == 0)
        .take(max)
        .map(|chunk| {
            let (head, body) = split_answer(chunk);
            HttpResponse {
                url: url.to_string(),
                status: 200,
                headers: headers(head),
                body: bytes::Bytes::copy_from_slice(body),
            }
        })
        .collect()
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}
