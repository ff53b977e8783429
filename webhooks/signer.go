// Package webhooks holds what checkoutd needs to send webhooks the Standard
// Webhooks way (https://www.standardwebhooks.com): signing secrets and
// signatures, the request body, the retry schedule, the validation of
// endpoint URLs and an HTTP client that refuses to reach inside the network
// it runs in, whatever a URL or its DNS says.
//
// It knows nothing of Postgres or of the actors that deliver; persistence
// stores endpoints and deliveries, actors/delivery*.go sends them.
package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix marks a symmetric signing secret; the rest is base64.
const secretPrefix = "whsec_"

// SecretBytes is how many random bytes a new secret has. The specification
// asks for 24 to 64.
const SecretBytes = 32

// Secret is an endpoint's signing secret, "whsec_" and the base64 of the
// HMAC key. Its String, GoString, LogValue and MarshalJSON hide it, so a
// secret that ends up in a log line or an error message by mistake shows as
// redacted; Reveal is the one way to read it.
type Secret string

// NewSecret returns a fresh secret of SecretBytes random bytes.
func NewSecret() Secret {
	var b [SecretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return Secret(secretPrefix + base64.StdEncoding.EncodeToString(b[:]))
}

// Reveal returns the secret itself, for showing it to its merchant once and
// for storing it.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer without revealing the secret.
func (s Secret) String() string { return "whsec_[redacted]" }

// GoString implements fmt.GoStringer without revealing the secret.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer without revealing the secret.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON refuses to put the secret into JSON by accident: it writes the
// redacted form. Marshal Reveal() where the secret is meant to be shown.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// ErrBadSecret is returned for a secret that is not "whsec_" and the base64
// of 24 to 64 bytes. It never contains the secret.
var ErrBadSecret = errors.New("webhook secret must be whsec_ and the base64 of 24 to 64 bytes")

// Key returns the HMAC key the secret encodes.
func (s Secret) Key() ([]byte, error) {
	rest, ok := strings.CutPrefix(string(s), secretPrefix)
	if !ok {
		return nil, ErrBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, ErrBadSecret
	}
	return key, nil
}

// Sign returns the value of the webhook-signature header for a message: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for each secret, in order,
// separated by spaces. During a rotation the caller passes the new secret
// and the old one, and receivers that know either can verify.
func Sign(id string, ts time.Time, body []byte, secrets ...Secret) (string, error) {
	if len(secrets) == 0 {
		return "", errors.New("sign webhook: no secret")
	}
	if strings.Contains(id, ".") {
		// The signed content is delimited by full stops.
		return "", fmt.Errorf("sign webhook: id %q contains a full stop", id)
	}
	var b strings.Builder
	for i, s := range secrets {
		key, err := s.Key()
		if err != nil {
			return "", fmt.Errorf("sign webhook %s: %w", id, err)
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write(strconv.AppendInt(nil, ts.Unix(), 10))
		mac.Write([]byte{'.'})
		mac.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String(), nil
}
