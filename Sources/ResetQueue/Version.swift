/// This build's version and source revision, from the repository's `VERSION` file and the git
/// checkout it was built from (the EmbedBuildInfo plugin).
public enum CognitoResetVersion {
    /// Shown by `--version`, recorded in `cognito_reset.workers`.
    public static let current = BuildInfo.version
    /// The git commit the binary was built from; "unknown" when built outside a git checkout.
    public static let revision = BuildInfo.revision
    /// `--version`'s line: `0.1.0 (revision 0123abcd…)`.
    public static let description = "\(current) (revision \(revision))"
}
