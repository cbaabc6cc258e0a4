// `SafeText` is part of what this module's values promise (error messages and request ids come
// escaped), and every module that reads outside values imports this one: re-exported so all of
// them share the one definition of terminal-safe text.
@_exported public import TerminalSafety
