/// This build's version, shown by `--version` and recorded in `cognito_reset.workers`.
public enum CognitoResetVersion {
    public static let current = "0.1.0"
}
