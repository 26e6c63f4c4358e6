//! Image build, tags and labels, SBOM from the image, offline vulnerability scan and push.
