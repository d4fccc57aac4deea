global using Xunit;

// The tests run where the embedded PostgreSQL runs: Linux (and other Unix-likes).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
