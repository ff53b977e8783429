package main

import (
	"context"
	"io"
)

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return usagef("dev: not yet: it arrives with the merchant API (issue #5); run `checkoutd sandbox` and `checkoutd serve --network sandbox` meanwhile")
}
