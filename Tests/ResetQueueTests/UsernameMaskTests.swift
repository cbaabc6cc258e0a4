import ResetQueue
import Testing

/// Per-job log lines carry a masked username unless an operator asks for them in full.
@Suite("Username masking")
struct UsernameMaskTests {
    @Test(arguments: [
        ("alice@example.com", "a***@example.com"),
        ("bob", "b***"),
        ("x", "x***"),
        ("@handle", "@***"),
        ("", ""),
        ("žofia", "ž***"),
    ])
    func masksAllButTheFirstCharacterAndTheDomain(_ username: String, _ masked: String) {
        #expect(UsernameMask.mask(username) == masked)
    }
}
