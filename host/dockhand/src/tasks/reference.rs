//! Image references as Nomad's docker driver reads them: repository, tag (`latest` when none is
//! given), digest, and the registry that serves them.
//!
//! Docker's `POST /images/create?fromImage=<repo>` with no tag pulls **every** tag of the
//! repository, so the driver always pulls an explicit reference: the digest when there is one,
//! else `<repo>:<tag>` with `latest` filled in.

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";

/// The key Docker Hub's credentials have in a Docker config file's `auths`.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as configured.
    pub original: String,
    /// Repository (registry host and path), without tag or digest.
    pub repo: String,
    /// Tag; `latest` when neither a tag nor a digest was given, `None` for a digest reference
    /// without a tag.
    pub tag: Option<String>,
    /// `sha256:…`, when the reference pins a digest.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `image` the way Nomad does: the tag is what follows the last `:` when that part
    /// contains no `/` (so a registry port is not a tag); no tag and no digest means `latest`.
    pub fn parse(image: &str) -> Self {
        let (name, digest) = match image.split_once('@') {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => (image, None),
        };
        let (repo, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
            _ => (name, None),
        };
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_owned()),
            (tag, _) => tag,
        };
        Self {
            original: image.to_owned(),
            repo: repo.to_owned(),
            tag,
            digest,
        }
    }

    /// What to pull: the digest reference, else `<repo>:<tag>`.
    pub fn pull_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), Some(t)) => format!("{}:{t}@{d}", self.repo),
            (Some(d), None) => format!("{}@{d}", self.repo),
            (None, Some(t)) => format!("{}:{t}", self.repo),
            (None, None) => self.repo.clone(),
        }
    }

    /// `<repo>:<tag>` as Nomad annotates its `Downloading image` event (the repository alone
    /// for a digest reference).
    pub fn display_ref(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}:{t}", self.repo),
            None => self.original.clone(),
        }
    }

    /// Whether the tag is `latest` (given or implied); such images are always pulled.
    pub fn is_latest(&self) -> bool {
        self.tag.as_deref() == Some("latest")
    }

    /// The registry serving the repository, as Docker normalises it: the first path component
    /// when it looks like a host (`.` or `:` in it, `localhost`, or upper case), else Docker Hub.
    pub fn registry(&self) -> String {
        match self.repo.split_once('/') {
            Some((first, _))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                if first == "index.docker.io" {
                    DOCKER_HUB.to_owned()
                } else {
                    first.to_owned()
                }
            }
            _ => DOCKER_HUB.to_owned(),
        }
    }

    /// The key of the registry's entry in a Docker config file (`auths`, `credHelpers`).
    pub fn config_key(&self) -> String {
        let registry = self.registry();
        if registry == DOCKER_HUB {
            DOCKER_HUB_CONFIG_KEY.to_owned()
        } else {
            registry
        }
    }
}

/// A Docker config `auths` key reduced to a host name (`https://host/v1/` → `host`).
pub fn config_key_hostname(key: &str) -> &str {
    let rest = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(image: &str) -> (String, Option<String>, Option<String>) {
        let r = ImageRef::parse(image);
        (r.repo, r.tag, r.digest)
    }

    #[test]
    fn an_untagged_image_means_latest() {
        assert_eq!(ImageRef::parse("redis").pull_ref(), "redis:latest");
        assert_eq!(
            ImageRef::parse("127.0.0.1:5000/team/app").pull_ref(),
            "127.0.0.1:5000/team/app:latest"
        );
        assert!(ImageRef::parse("redis").is_latest());
        assert!(ImageRef::parse("redis:latest").is_latest());
        assert!(!ImageRef::parse("redis:7").is_latest());
    }

    #[test]
    fn tags_ports_and_digests_are_told_apart() {
        assert_eq!(
            parts("127.0.0.1:5000/app:1"),
            ("127.0.0.1:5000/app".into(), Some("1".into()), None)
        );
        assert_eq!(
            parts("app@sha256:abc"),
            ("app".into(), None, Some("sha256:abc".into()))
        );
        assert_eq!(
            ImageRef::parse("app@sha256:abc").pull_ref(),
            "app@sha256:abc"
        );
        assert!(!ImageRef::parse("app@sha256:abc").is_latest());
        assert_eq!(
            ImageRef::parse("app:1@sha256:abc").pull_ref(),
            "app:1@sha256:abc"
        );
        assert_eq!(
            ImageRef::parse("app@sha256:abc").display_ref(),
            "app@sha256:abc"
        );
        assert_eq!(ImageRef::parse("redis").display_ref(), "redis:latest");
    }

    #[test]
    fn the_registry_is_normalised_like_docker() {
        for (image, registry, key) in [
            ("redis", DOCKER_HUB, DOCKER_HUB_CONFIG_KEY),
            ("library/redis:7", DOCKER_HUB, DOCKER_HUB_CONFIG_KEY),
            (
                "index.docker.io/library/redis",
                DOCKER_HUB,
                DOCKER_HUB_CONFIG_KEY,
            ),
            ("docker.io/x/y", DOCKER_HUB, DOCKER_HUB_CONFIG_KEY),
            ("127.0.0.1:5000/app", "127.0.0.1:5000", "127.0.0.1:5000"),
            ("localhost/app", "localhost", "localhost"),
            ("quay.io/a/b:1", "quay.io", "quay.io"),
        ] {
            let r = ImageRef::parse(image);
            assert_eq!(
                (r.registry().as_str(), r.config_key().as_str()),
                (registry, key),
                "{image}"
            );
        }
        assert_eq!(config_key_hostname("https://quay.io/v1/"), "quay.io");
        assert_eq!(config_key_hostname("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
