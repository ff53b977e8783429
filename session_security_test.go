package checkout_test

import (
	"testing"

	checkout "github.com/checkoutd/checkoutd"
)

// TestValidateMetadataRefusesNUL: Postgres cannot store a NUL character in
// text or jsonb, so metadata that holds one was a 500 at the insert; it is
// a 400 naming the parameter.
func TestValidateMetadataRefusesNUL(t *testing.T) {
	for _, tc := range []struct {
		m           map[string]string
		param, code string
	}{
		{map[string]string{"order": "a\x00b"}, "metadata[order]", "metadata_value_invalid"},
		{map[string]string{"\x00": "v"}, "metadata", "metadata_key_invalid"},
		{map[string]string{"k\x00": "v"}, "metadata", "metadata_key_invalid"},
	} {
		wantInvalidParam(t, checkout.ValidateMetadata(tc.m), tc.param, tc.code)
	}
	if err := checkout.ValidateMetadata(map[string]string{"k": "\u2400 é \x01"}); err != nil {
		t.Fatalf("other control characters are fine in metadata: %v", err)
	}
}
