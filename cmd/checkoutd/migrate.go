package main

import (
	"context"
	"fmt"
	"io"

	"github.com/checkoutd/checkoutd/persistence"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("migrate")
	f.SetOutput(stderr)
	var dsn string
	f.string(&dsn, "database-url", "DATABASE_URL", "", "Postgres connection URL")
	if err := f.parse(args); err != nil {
		return err
	}
	if dsn == "" {
		return usagef("migrate: --database-url is required")
	}
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "database is at schema version %d\n", v)
	return nil
}
