"""HTTP transport: one router module per API area, thin over the domain."""
