package horizon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
)

// MaxPageLimit is the most records Horizon serves in one page.
const MaxPageLimit = 200

// pageBuffers holds the read buffers of pages, up to maxPooledPageBuffer
// each.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledPageBuffer = 16 << 20

// maxPageBytes bounds one page: 200 records of operations joined with
// transactions of up to 100 operations each stay well under it.
const maxPageBytes = 64 << 20

// PaymentsPage reads one JSON page of /accounts/{account}/payments: the
// payments after cursor, oldest first, joined with their transactions, at
// most limit of them (1 to MaxPageLimit). A page shorter than limit reached
// the end of the account's history as Horizon had it. Operations of a type
// the SDK cannot decode come back as a bare operations.Base. The joined
// transactions come without their XDR (envelope, result and meta), and
// records and transactions without their links: see stripXDR and
// stripLinks.
func (c *Client) PaymentsPage(ctx context.Context, account, cursor string, limit int) ([]operations.Operation, error) {
	if cursor == "" {
		return nil, fmt.Errorf("page payments of %s: empty cursor", account)
	}
	if limit < 1 || limit > MaxPageLimit {
		return nil, fmt.Errorf("page payments of %s: limit %d is not in [1, %d]", account, limit, MaxPageLimit)
	}
	u := fmt.Sprintf("%s/accounts/%s/payments?%s", c.base, url.PathEscape(account), url.Values{
		"cursor": {cursor}, "limit": {strconv.Itoa(limit)}, "order": {"asc"}, "join": {"transactions"},
	}.Encode())
	ops, err := c.fetchPage(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("page payments of %s after %s: %w", account, cursor, err)
	}
	return ops, nil
}

func (c *Client) fetchPage(ctx context.Context, u string) ([]operations.Operation, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/hal+json, application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, statusError(resp)
	}
	// A full page joined with its transactions runs to megabytes: reuse
	// the buffers of earlier pages, sized from Content-Length when there
	// is one, instead of letting io.ReadAll double a new one up. Decoding
	// copies what it keeps, so the buffer goes back once decoded.
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledPageBuffer {
			pageBuffers.Put(buf)
		}
	}()
	buf.Reset()
	buf.Grow(int(min(max(resp.ContentLength, 0), maxPageBytes)) + bytes.MinRead)
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxPageBytes+1)); err != nil {
		return nil, err
	}
	if buf.Len() > maxPageBytes {
		return nil, fmt.Errorf("page larger than %d bytes", maxPageBytes)
	}
	body := stripLinks(stripXDR(buf.Bytes()))
	if ops, ok := decodeLeanPage(body); ok {
		return ops, nil
	}
	var page struct {
		Embedded struct {
			Records []json.RawMessage `json:"records"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, fmt.Errorf("decode page: %w", err)
	}
	return decodeRecords(page.Embedded.Records)
}

// strippedXDR are the XDR fields of a joined transaction. Nothing
// downstream reads them, yet they are most of a page: every payment
// record of a transaction repeats its envelope, so a page of 100-payment
// transactions carries each envelope 100 times, and each pass of the JSON
// decoder (the page, then each record, then its transaction) scans them.
var strippedXDR = [...]string{"envelope_xdr", "result_xdr", "result_meta_xdr", "fee_meta_xdr"}

// stripXDR empties, in place, the string values of the keys in
// strippedXDR, and returns body shortened accordingly. It does not parse
// the JSON: in valid JSON a quote can only delimit a string, so a quoted
// key followed by a colon is a key. Anything it does not recognise (a
// value that is not a string, an unterminated string) it leaves as it is
// for the decoder to judge.
func stripXDR(body []byte) []byte {
	return cutValues(body, `_xdr"`, xdrValue)
}

// cutValues empties, in place, the values that span finds after each
// occurrence of marker in body, and returns body shortened accordingly.
// span gets the marker's start i and its end, and reports the bytes to
// cut, or false to keep that occurrence as it is.
func cutValues(body []byte, marker string, span func(b []byte, i, end int) (from, to int, ok bool)) []byte {
	out := body[:0] // writes never overtake reads: out only shrinks
	rest := body
	for {
		i := bytes.Index(rest, []byte(marker))
		if i < 0 {
			break
		}
		end := i + len(marker)
		from, to, ok := span(rest, i, end)
		if !ok {
			out = append(out, rest[:end]...)
			rest = rest[end:]
			continue
		}
		out = append(out, rest[:from]...)
		rest = rest[to:]
	}
	return append(out, rest...)
}

// xdrValue reports the span strictly inside the quotes of the string value
// of the key that ends at end (its "_xdr" starting at i), when that key
// is one of strippedXDR.
func xdrValue(b []byte, i, end int) (from, to int, ok bool) {
	start := bytes.LastIndexByte(b[:i], '"')
	if start < 0 {
		return 0, 0, false
	}
	key := string(b[start+1 : end-1])
	known := false
	for _, k := range strippedXDR {
		known = known || key == k
	}
	if !known {
		return 0, 0, false
	}
	j, ok := valueAt(b, end)
	if !ok || b[j] != '"' {
		return 0, 0, false
	}
	from = j + 1
	// Base64 holds no quote or backslash; an escape makes it not ours.
	// Two IndexByte scans (vectorised) beat one IndexAny over strings
	// this long.
	n := bytes.IndexByte(b[from:], '"')
	if n < 0 || bytes.IndexByte(b[from:from+n], '\\') >= 0 {
		return 0, 0, false
	}
	return from, from + n, true
}

// stripLinks empties, in place, the object values of "_links" keys, and
// returns body shortened accordingly. Once stripXDR has run, the links
// (a record's and its transaction's: about 1.1 KB of about 2.3 KB) are
// the largest part of a record left, and nothing downstream reads them.
// Like stripXDR it does not parse the JSON: "_links" followed by a colon
// is a key (a quote inside a string is escaped, so the one after the name
// ends a string), and the value's end is found by counting braces outside
// strings. Anything it does not recognise (a value that is not an object,
// an object that does not end) it leaves as it is for the decoder to
// judge.
func stripLinks(body []byte) []byte {
	return cutValues(body, `"_links"`, func(b []byte, _, end int) (int, int, bool) { return objectValue(b, end) })
}

// objectValue reports the span strictly inside the braces of the object
// that is the value of the key ending at end.
func objectValue(b []byte, end int) (from, to int, ok bool) {
	j, ok := valueAt(b, end)
	if !ok || b[j] != '{' {
		return 0, 0, false
	}
	from = j + 1
	// Outside strings only braces and punctuation; the strings (the
	// hrefs, most of the bytes) are skipped to their closing quote by
	// IndexByte, which is vectorised.
	depth := 1
	for k := from; k < len(b); k++ {
		switch b[k] {
		case '"':
			n := closingQuote(b[k+1:])
			if n < 0 {
				return 0, 0, false
			}
			k += 1 + n
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				return from, k, true
			}
		}
	}
	return 0, 0, false
}

// closingQuote returns the index in s of the quote that ends the string s
// is inside of (a quote after an odd run of backslashes is escaped), or -1.
func closingQuote(s []byte) int {
	for off := 0; ; {
		n := bytes.IndexByte(s[off:], '"')
		if n < 0 {
			return -1
		}
		q := off + n
		slashes := 0
		for q-1-slashes >= 0 && s[q-1-slashes] == '\\' {
			slashes++
		}
		if slashes%2 == 0 {
			return q
		}
		off = q + 1
	}
}

// valueAt returns the index of the first byte of the value of the key
// whose closing quote is just before end: past the spaces, the colon and
// the spaces again. It reports false when no colon follows or nothing
// follows it.
func valueAt(b []byte, end int) (int, bool) {
	j := end
	for j < len(b) && isSpace(b[j]) {
		j++
	}
	if j == len(b) || b[j] != ':' {
		return 0, false
	}
	j++
	for j < len(b) && isSpace(b[j]) {
		j++
	}
	return j, j < len(b)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeRecords decodes a page's records, spread over the CPUs: decoding a
// record joined with its transaction is most of the cost of reading a
// page.
func decodeRecords(records []json.RawMessage) ([]operations.Operation, error) {
	ops := make([]operations.Operation, len(records))
	errs := make([]error, len(records))
	workers := min(runtime.GOMAXPROCS(0), len(records)/16+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(records); i += workers {
				ops[i], errs[i] = decodeRecord(records[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ops, nil
}

// decodeRecord is DecodeOperation in one decoding pass instead of two: it
// finds the record's type_i without decoding the record (and the large
// XDR strings of its transaction) into an operations.Base first. A record
// it cannot read that way goes to DecodeOperation.
func decodeRecord(data []byte) (operations.Operation, error) {
	typeI, ok := peekTypeI(data)
	if !ok {
		return DecodeOperation(data)
	}
	op, err := operations.UnmarshalOperation(typeI, data)
	if err != nil || op.PagingToken() == "" {
		return DecodeOperation(data) // it words the error
	}
	return op, nil
}

// peekTypeI reads the value of the one "type_i" key in an operation
// record. Only an operation has that key (its joined transaction does
// not), so a record with exactly one occurrence names its type there.
func peekTypeI(data []byte) (int32, bool) {
	const key = `"type_i":`
	i := bytes.Index(data, []byte(key))
	if i < 0 || bytes.Contains(data[i+len(key):], []byte(key)) {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(key):], " \t\r\n")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(rest[:n]), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(v), true
}
