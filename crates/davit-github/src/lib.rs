//! GitHub API client: deployments, statuses and approval issues, base URL from GITHUB_API_URL.
