package persistence_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// TestAuthenticateAPIKeyIsTimingSafe reads AuthenticateAPIKey's source:
// the row is looked up by the key's SHA-256 (so how long the lookup takes
// depends on the hash, which a guess cannot steer, and never on the
// secret), and the stored hash is then compared with
// subtle.ConstantTimeCompare, not ==, bytes.Equal or a string compare.
func TestAuthenticateAPIKeyIsTimingSafe(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "apikeys.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == "AuthenticateAPIKey" {
			fn = d
		}
	}
	if fn == nil {
		t.Fatal("AuthenticateAPIKey not found in apikeys.go")
	}
	secret := fn.Type.Params.List[len(fn.Type.Params.List)-1].Names[0].Name
	var hashed, constantTime bool
	var queries []string
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			switch fun := n.Fun.(type) {
			case *ast.Ident:
				if fun.Name == "HashAPIKey" && len(n.Args) == 1 && isIdent(n.Args[0], secret) {
					hashed = true
				}
			case *ast.SelectorExpr:
				name := exprString(fun)
				switch {
				case name == "subtle.ConstantTimeCompare":
					constantTime = true
				case name == "bytes.Equal" || name == "strings.EqualFold" || name == "reflect.DeepEqual":
					t.Errorf("%s: AuthenticateAPIKey compares with %s", fset.Position(n.Pos()), name)
				case strings.HasSuffix(name, ".QueryRow") || strings.HasSuffix(name, ".Query") || strings.HasSuffix(name, ".Exec"):
					for _, a := range n.Args[1:] {
						if lit, ok := a.(*ast.BasicLit); ok {
							queries = append(queries, lit.Value)
						}
						if isIdent(a, secret) {
							t.Errorf("%s: the secret itself is sent to Postgres", fset.Position(a.Pos()))
						}
					}
				}
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && (isIdent(n.X, secret) || isIdent(n.Y, secret)) {
				t.Errorf("%s: the secret is compared with %s", fset.Position(n.Pos()), n.Op)
			}
		}
		return true
	})
	if !hashed {
		t.Error("AuthenticateAPIKey does not hash the secret with HashAPIKey")
	}
	if !constantTime {
		t.Error("AuthenticateAPIKey does not compare with subtle.ConstantTimeCompare")
	}
	if len(queries) != 1 || !strings.Contains(queries[0], "WHERE hash = $1") {
		t.Errorf("AuthenticateAPIKey's queries %q: want one, by hash", queries)
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return ""
}

// TestAuthenticateAPIKeyNearMisses: keys that differ from a real one in one
// character, by case, or by prefix are all the one invalid-key error, as is
// the real key once revoked.
func TestAuthenticateAPIKeyNearMisses(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	m := s.merchant(t, "Keys", account(t, 1))
	k, secret := persistence.NewAPIKey(m.ID, false, time.Now())
	if err := s.db.CreateAPIKey(ctx, k, secret); err != nil {
		t.Fatal(err)
	}
	if got, err := s.db.AuthenticateAPIKey(ctx, secret); err != nil || got.ID != k.ID {
		t.Fatalf("the real key: %+v, %v", got, err)
	}
	last := secret[len(secret)-1]
	flip := byte('a')
	if last == 'a' {
		flip = 'b'
	}
	for _, guess := range []string{
		secret[:len(secret)-1] + string(flip),
		strings.ToUpper(secret),
		strings.Replace(secret, persistence.APIKeyPrefixTest, persistence.APIKeyPrefixLive, 1),
		secret[:len(secret)-1],
		secret + "a",
		"",
	} {
		if _, err := s.db.AuthenticateAPIKey(ctx, guess); err != persistence.ErrAPIKeyInvalid {
			t.Errorf("AuthenticateAPIKey(near miss %q) = %v, want ErrAPIKeyInvalid", guess, err)
		}
	}
	if _, err := s.db.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.AuthenticateAPIKey(ctx, secret); err != persistence.ErrAPIKeyInvalid || checkout.ErrorCode(err) != checkout.EUNAUTHORIZED {
		t.Errorf("revoked key: %v", err)
	}
}
