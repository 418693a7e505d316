"""Developer tooling: the local SecantusDB test server and helpers around it (not shipped)."""
