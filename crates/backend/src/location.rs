//! Repository locations: parses `PATH`, `fs:PATH`, `s3:BUCKET[/PREFIX]`,
//! `sftp:USER@HOST[:PORT]/PATH`, `opendal:SCHEME?key=value&...` and
//! `memory:`, and builds the OpenDAL operator for each with its options.

use opendal::Operator;

use crate::BackendError;

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local folder (absolute after parsing).
    Local(String),
    /// An S3 bucket and a key prefix (no leading or trailing slash).
    S3 { bucket: String, prefix: String },
    /// A folder on an SSH server, reached by SFTP.
    Sftp { user: Option<String>, host: String, port: Option<u16>, path: String },
    /// Any other OpenDAL service compiled in, by scheme and its options.
    Opendal { scheme: String, options: Vec<(String, String)> },
    /// An in-memory store (tests).
    Memory,
}

fn invalid(location: &str, why: impl Into<String>) -> BackendError {
    BackendError::Location(location.into(), why.into())
}

impl Location {
    /// Parses a location string.
    pub fn parse(location: &str) -> Result<Self, BackendError> {
        if location.is_empty() {
            return Err(invalid(location, "empty"));
        }
        if location == "memory:" {
            return Ok(Self::Memory);
        }
        if let Some(rest) = location.strip_prefix("s3:") {
            let rest = rest.trim_start_matches('/');
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(location, "give a bucket: s3:BUCKET or s3:BUCKET/PREFIX"));
            }
            let prefix = prefix.trim_matches('/').to_string();
            return Ok(Self::S3 { bucket: bucket.into(), prefix });
        }
        if let Some(rest) = location.strip_prefix("sftp:") {
            return Self::parse_sftp(location, rest);
        }
        if let Some(rest) = location.strip_prefix("opendal:") {
            let (scheme, query) = rest.split_once('?').unwrap_or((rest, ""));
            if scheme.is_empty() {
                return Err(invalid(location, "give a service: opendal:SCHEME?key=value&..."));
            }
            let mut options = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(invalid(location, format!("option {pair:?} is not key=value")));
                };
                options.push((k.to_string(), v.to_string()));
            }
            return Ok(Self::Opendal { scheme: scheme.into(), options });
        }
        let path = location.strip_prefix("fs:").unwrap_or(location);
        let abs = std::path::absolute(path).map_err(|e| invalid(location, e.to_string()))?;
        Ok(Self::Local(abs.to_string_lossy().into_owned()))
    }

    /// `[USER@]HOST[:PORT]/PATH`; the path is absolute on the server.
    fn parse_sftp(location: &str, rest: &str) -> Result<Self, BackendError> {
        let usage = "use sftp:USER@HOST[:PORT]/PATH (the path is absolute on the server)";
        let Some((authority, path)) = rest.split_once('/') else {
            return Err(invalid(location, usage));
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => {
                let port = p.parse().map_err(|_| invalid(location, format!("port {p:?} is not a number")))?;
                (h, Some(port))
            }
            None => (hostport, None),
        };
        if host.is_empty() || user.as_deref() == Some("") {
            return Err(invalid(location, usage));
        }
        Ok(Self::Sftp { user, host: host.into(), port, path: format!("/{}", path.trim_end_matches('/')) })
    }

    /// True for services reached over a network.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Self::Local(_) | Self::Memory)
    }

    /// True where a write is visible while in progress, so files are
    /// written under a temporary name and renamed into place.
    pub fn needs_staging(&self) -> bool {
        matches!(self, Self::Sftp { .. })
    }

    /// Builds the bare operator (no layers). `options` are the `-o`
    /// service options; each service accepts only its own.
    pub fn operator(&self, location: &str, options: &[(String, String)]) -> Result<Operator, BackendError> {
        let bad = |e: opendal::Error| invalid(location, e.to_string());
        let reject = |known: &str| -> Result<(), BackendError> {
            match options.first() {
                Some((k, _)) => Err(invalid(location, format!("unknown option {k} (this service takes: {known})"))),
                None => Ok(()),
            }
        };
        // HTTP client (reqwest, rustls) and the scheme registry; idempotent.
        opendal::install_default();
        match self {
            Self::Memory => {
                reject("none")?;
                Operator::new(opendal::services::Memory::default()).map_err(bad)
            }
            Self::Local(root) => {
                reject("none")?;
                // Writes go to `<root>/tmp/` first and are renamed into place
                // after an fsync, so no reader sees a partial file.
                let builder = opendal::services::Fs::default().root(root).atomic_write_dir(&format!("{root}/tmp"));
                Operator::new(builder).map_err(bad)
            }
            Self::S3 { bucket, prefix } => Operator::new(s3_builder(location, bucket, prefix, options)?).map_err(bad),
            Self::Sftp { user, host, port, path } => {
                let mut builder = opendal::services::Sftp::default().root(path);
                builder = builder.endpoint(&match port {
                    Some(p) => format!("ssh://{host}:{p}"),
                    None => format!("ssh://{host}"),
                });
                if let Some(u) = user {
                    builder = builder.user(u);
                }
                for (k, v) in options {
                    match k.as_str() {
                        "sftp.key" => builder = builder.key(v),
                        "sftp.known_hosts" => builder = builder.known_hosts_strategy(v),
                        _ => reject("sftp.key, sftp.known_hosts=strict|accept|add")?,
                    }
                }
                Operator::new(builder).map_err(bad)
            }
            Self::Opendal { scheme, options: given } => {
                reject("none; give them in the location: opendal:SCHEME?key=value&...")?;
                Operator::via_iter(scheme, given.clone()).map_err(bad)
            }
        }
    }
}

/// The S3 service. Endpoint, region and credentials come from `s3.*`
/// options, else from the usual `AWS_*` environment variables. Paths are
/// addressed path-style unless `s3.virtual_host_style=true`.
fn s3_builder(
    location: &str,
    bucket: &str,
    prefix: &str,
    options: &[(String, String)],
) -> Result<opendal::services::S3, BackendError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut builder = opendal::services::S3::default().bucket(bucket).root(&format!("/{prefix}"));
    let mut region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
    let mut endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
    let mut key = env("AWS_ACCESS_KEY_ID");
    let mut secret = env("AWS_SECRET_ACCESS_KEY");
    for (k, v) in options {
        match k.as_str() {
            "s3.endpoint" => endpoint = Some(v.clone()),
            "s3.region" => region = Some(v.clone()),
            "s3.access_key_id" => key = Some(v.clone()),
            "s3.secret_access_key" => secret = Some(v.clone()),
            "s3.storage_class" => builder = builder.default_storage_class(v),
            "s3.virtual_host_style" if v == "true" => builder = builder.enable_virtual_host_style(),
            "s3.virtual_host_style" => {}
            other => {
                return Err(invalid(
                    location,
                    format!(
                        "unknown option {other} (s3.endpoint, s3.region, s3.access_key_id, s3.secret_access_key, s3.storage_class, s3.virtual_host_style)"
                    ),
                ));
            }
        }
    }
    builder = builder.region(region.as_deref().unwrap_or("us-east-1"));
    if let Some(e) = &endpoint {
        builder = builder.endpoint(e);
    }
    if let (Some(k), Some(s)) = (&key, &secret) {
        builder = builder.access_key_id(k).secret_access_key(s);
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            Location::parse("s3:bucket/a/b/").unwrap(),
            Location::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert_eq!(Location::parse("s3:bucket").unwrap(), Location::S3 { bucket: "bucket".into(), prefix: "".into() });
        assert_eq!(
            Location::parse("sftp:me@127.0.0.1:2222/srv/repo").unwrap(),
            Location::Sftp {
                user: Some("me".into()),
                host: "127.0.0.1".into(),
                port: Some(2222),
                path: "/srv/repo".into()
            }
        );
        assert_eq!(
            Location::parse("sftp:host/r").unwrap(),
            Location::Sftp { user: None, host: "host".into(), port: None, path: "/r".into() }
        );
        assert_eq!(
            Location::parse("opendal:memory?root=/x").unwrap(),
            Location::Opendal { scheme: "memory".into(), options: vec![("root".into(), "/x".into())] }
        );
        assert!(matches!(Location::parse("fs:rel").unwrap(), Location::Local(p) if p.starts_with('/')));
        for bad in ["", "s3:", "sftp:host", "sftp:me@h:port/x", "sftp:@h/x", "opendal:", "opendal:fs?root"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
