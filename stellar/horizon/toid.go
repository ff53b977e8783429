package horizon

import (
	"fmt"
	"strconv"
)

// An operation's id and paging token is its TOID: the ledger sequence in
// the high 32 bits, then the transaction's and the operation's order.

// LedgerOf returns the ledger sequence of an operation's paging token.
func LedgerOf(pagingToken string) (uint32, error) {
	id, err := strconv.ParseInt(pagingToken, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("paging token %q: not an operation id", pagingToken)
	}
	return uint32(id >> 32), nil
}

// CursorAfterLedger returns the paging token just after every operation of
// ledger seq: a stream started there begins with ledger seq+1.
func CursorAfterLedger(seq uint32) string {
	return strconv.FormatInt((int64(seq)+1)<<32-1, 10)
}

// ComparePagingTokens compares two operation paging tokens numerically:
// -1 if a is before b, 0 if equal, +1 if after. A token that is not a number
// sorts before every number.
func ComparePagingTokens(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	switch {
	case errA != nil && errB != nil:
		return 0
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
