import Basics
import Control
import TestSupport

/// The status keys a coordinator (or `launch`) writes into `runDir/keys`, once they exist.
func statusSecurity(runDir: String, timeout: Double = 60) throws -> ControlSecurity {
    waitUntil(deadline: .after(seconds: timeout), interval: 0.02) { Files.exists(runDir + "/keys/status.key") }
    return .curve(try JobKeys.load(runDir + "/keys", role: .status))
}
