package checkout

import (
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// TestSecretsUseCryptoRand backs the gosec G404 exception
// (docs/decisions/0008-gosec-exceptions.md): math/rand is allowed for
// jitter and fault schedules only, so every file that makes an id, a memo,
// an API key or a webhook signing secret imports crypto/rand and no
// math/rand.
func TestSecretsUseCryptoRand(t *testing.T) {
	for _, file := range []string{"id.go", "session.go", "persistence/apikeys.go", "webhooks/signer.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		crypto := false
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch path {
			case "crypto/rand":
				crypto = true
			case "math/rand", "math/rand/v2":
				t.Errorf("%s imports %s: secrets and ids must come from crypto/rand", file, path)
			}
		}
		if !crypto {
			t.Errorf("%s does not import crypto/rand: where do its random bytes come from?", file)
		}
	}
}
