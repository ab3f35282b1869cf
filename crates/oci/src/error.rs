//! The OCI error body `{"errors":[{"code","message","detail"}]}` and the spec's error codes.

use serde::Serialize;

/// An error code from the distribution spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Provided digest did not match uploaded content, or is malformed.
    DigestInvalid,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length, or a range is not satisfiable.
    SizeInvalid,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
    /// Authentication required.
    Unauthorized,
    /// The server failed; not caused by the request.
    Unknown,
}

impl ErrorCode {
    /// The code as it appears in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

/// One entry of an OCI error body.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    /// The spec's error code.
    pub code: &'static str,
    /// A message for humans.
    pub message: String,
    /// Structured detail; `null` when there is none.
    pub detail: serde_json::Value,
}

/// The OCI error body.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// The errors; Speil always sends one.
    pub errors: Vec<ErrorInfo>,
}

impl ErrorBody {
    /// A body with one error.
    pub fn new(code: ErrorCode, message: impl Into<String>, detail: serde_json::Value) -> Self {
        ErrorBody {
            errors: vec![ErrorInfo {
                code: code.as_str(),
                message: message.into(),
                detail,
            }],
        }
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an error body always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_spec_shape() {
        let b = ErrorBody::new(ErrorCode::BlobUnknown, "nope", serde_json::json!({"d": 1}));
        let v: serde_json::Value = serde_json::from_slice(&b.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errors":[{"code":"BLOB_UNKNOWN","message":"nope","detail":{"d":1}}]})
        );
    }
}
