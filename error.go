package checkout

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in the api package and nowhere else.
const (
	ECONFLICT       = "conflict"
	EINTERNAL       = "internal"
	EINVALID        = "invalid"
	ENOTFOUND       = "not_found"
	EUNAUTHORIZED   = "unauthorized"
	ERATELIMITED    = "rate_limited"
	ENOTIMPLEMENTED = "not_implemented"
)

// Error is a domain error that can be shown to a merchant. Internal causes
// are wrapped in other errors and never reach the client.
type Error struct {
	// Code is one of the E* constants.
	Code string
	// Reason is a stable machine-readable name, such as "session_not_open".
	Reason string
	// Message is a human-readable sentence.
	Message string
	// Param names the offending request parameter, if any.
	Param string
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Param != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Param)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParam reports a bad request parameter.
func InvalidParam(param, reason, format string, args ...any) *Error {
	return &Error{Code: EINVALID, Reason: reason, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// Errors that callers test for with errors.Is.
var (
	// ErrNotFound is returned when a record does not exist (or belongs to
	// someone else).
	ErrNotFound = &Error{Code: ENOTFOUND, Reason: "resource_missing", Message: "no such resource"}
	// ErrSessionNotOpen is returned for a cancel or expire of a session that
	// is already complete, expired or canceled.
	ErrSessionNotOpen = &Error{Code: ECONFLICT, Reason: "session_not_open", Message: "the session is not open"}
	// ErrNotYetExpired is returned for an expire before the session's expiry.
	ErrNotYetExpired = &Error{Code: ECONFLICT, Reason: "session_not_expired", Message: "the session has not reached its expiry"}
	// ErrVersionConflict is returned when a session changed between read and
	// write. The writer reloads and decides again.
	ErrVersionConflict = &Error{Code: ECONFLICT, Reason: "version_conflict", Message: "the session changed concurrently"}
	// ErrAlreadyApplied is returned when a Horizon operation was recorded
	// before. It is an acknowledgement, not a failure.
	ErrAlreadyApplied = &Error{Code: ECONFLICT, Reason: "already_applied", Message: "the operation was already recorded"}
	// ErrMemoTaken is returned when a memo is already used on an account.
	ErrMemoTaken = &Error{Code: ECONFLICT, Reason: "memo_taken", Message: "the memo is already used on this account"}
	// ErrAmountOverflow is returned when a sum would leave int64 stroops.
	ErrAmountOverflow = &Error{Code: EINVALID, Reason: "amount_overflow", Message: "the amount is out of range"}
)
