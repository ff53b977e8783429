package persistence_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPgbenchScriptsMatchBatch regenerates the pgbench scripts that copy
// SettleBatch's statements (persistence/pgbench/gen.sh cuts them out of
// batch.go) and fails when the committed ones differ: the Postgres ceiling
// must measure the statements checkoutd sends today.
func TestPgbenchScriptsMatchBatch(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", "pgbench/gen.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	fresh, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil || len(fresh) == 0 {
		t.Fatalf("gen.sh wrote no scripts: %v", err)
	}
	for _, f := range fresh {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("pgbench", filepath.Base(f)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("pgbench/%s differs from what gen.sh writes from batch.go; run persistence/pgbench/gen.sh", filepath.Base(f))
		}
	}
}
