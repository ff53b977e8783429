package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

const merchantUsage = `Usage:
  checkoutd merchant create --name NAME --account G... [--database-url URL] [--network NET]
  checkoutd merchant keys create --merchant mer_... [--database-url URL] [--network NET]
  checkoutd merchant keys revoke (--key key_... | --prefix sk_test_...) [--database-url URL]

Each prints one JSON object on stdout. An API key is shown once, when it is
made, and stored only as its SHA-256 hash. Keys are sk_live_ on --network
public and sk_test_ on any other.
`

// runMerchant manages merchants and their API keys.
func runMerchant(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, merchantUsage)
		return usagef("merchant: no subcommand given")
	}
	switch args[0] {
	case "create":
		return runMerchantCreate(ctx, args[1:], stdout, stderr)
	case "keys":
		if len(args) < 2 {
			fmt.Fprint(stderr, merchantUsage)
			return usagef("merchant keys: want create or revoke")
		}
		switch args[1] {
		case "create":
			return runKeyCreate(ctx, args[2:], stdout, stderr)
		case "revoke":
			return runKeyRevoke(ctx, args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, merchantUsage)
		return usagef("merchant keys: unknown subcommand %q", args[1])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, merchantUsage)
		return nil
	}
	fmt.Fprint(stderr, merchantUsage)
	return usagef("merchant: unknown subcommand %q", args[0])
}

// dbFlags are the flags every merchant subcommand takes.
type dbFlags struct {
	databaseURL string
	network     string
}

func (d *dbFlags) register(f *flags) {
	f.string(&d.databaseURL, "database-url", "DATABASE_URL", "", "Postgres connection URL (required)")
	f.string(&d.network, "network", "CHECKOUTD_NETWORK", "testnet", "Stellar network: testnet, public or sandbox (public makes live keys)")
}

func (d *dbFlags) open(ctx context.Context, cmd string) (*persistence.DB, error) {
	if d.databaseURL == "" {
		return nil, usagef("%s: --database-url is required", cmd)
	}
	if _, ok := networks[d.network]; !ok {
		return nil, usagef("%s: --network %q: want testnet, public or sandbox", cmd, d.network)
	}
	return persistence.Open(ctx, d.databaseURL)
}

func (d *dbFlags) live() bool { return d.network == "public" }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runMerchantCreate creates a merchant and its first API key.
func runMerchantCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("merchant create")
	f.SetOutput(stderr)
	var (
		d             dbFlags
		name, account string
	)
	d.register(f)
	f.string(&name, "name", "CHECKOUTD_MERCHANT_NAME", "", "the merchant's name (required)")
	f.string(&account, "account", "CHECKOUTD_MERCHANT_ACCOUNT", "", "the merchant's receiving Stellar account, G... (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	m, err := checkout.NewMerchant(name, account, time.Now())
	if err != nil {
		return usagef("merchant create: --%s: %s", paramOf(err), messageOf(err))
	}
	db, err := d.open(ctx, "merchant create")
	if err != nil {
		return err
	}
	defer db.Close()
	key, secret := persistence.NewAPIKey(m.ID, d.live(), time.Now())
	if err := db.CreateMerchantWithKey(ctx, m, key, secret); err != nil {
		return err
	}
	return printJSON(stdout, map[string]string{"merchant_id": m.ID, "api_key": secret, "key_id": key.ID})
}

// runKeyCreate makes another API key for a merchant.
func runKeyCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("merchant keys create")
	f.SetOutput(stderr)
	var (
		d          dbFlags
		merchantID string
	)
	d.register(f)
	f.string(&merchantID, "merchant", "CHECKOUTD_MERCHANT", "", "the merchant's id, mer_... (required)")
	if err := f.parse(args); err != nil {
		return err
	}
	if !checkout.HasPrefix(merchantID, checkout.PrefixMerchant) {
		return usagef("merchant keys create: --merchant %q: want a merchant id, mer_...", merchantID)
	}
	db, err := d.open(ctx, "merchant keys create")
	if err != nil {
		return err
	}
	defer db.Close()
	key, secret := persistence.NewAPIKey(merchantID, d.live(), time.Now())
	if err := db.CreateAPIKey(ctx, key, secret); err != nil {
		if checkout.ErrorCode(err) == checkout.ENOTFOUND {
			return fmt.Errorf("merchant keys create: no merchant %s", merchantID)
		}
		return err
	}
	return printJSON(stdout, map[string]string{"merchant_id": merchantID, "api_key": secret, "key_id": key.ID})
}

// runKeyRevoke revokes an API key, named by its id or its prefix.
func runKeyRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("merchant keys revoke")
	f.SetOutput(stderr)
	var (
		d             dbFlags
		keyID, prefix string
	)
	d.register(f)
	f.string(&keyID, "key", "CHECKOUTD_KEY", "", "the key's id, key_...")
	f.string(&prefix, "prefix", "CHECKOUTD_KEY_PREFIX", "", "the key's prefix, such as sk_test_4xqa7b2c")
	if err := f.parse(args); err != nil {
		return err
	}
	if (keyID == "") == (prefix == "") {
		return usagef("merchant keys revoke: give exactly one of --key and --prefix")
	}
	if keyID != "" && !checkout.HasPrefix(keyID, checkout.PrefixAPIKey) {
		return usagef("merchant keys revoke: --key %q: want a key id, key_...", keyID)
	}
	db, err := d.open(ctx, "merchant keys revoke")
	if err != nil {
		return err
	}
	defer db.Close()
	var key persistence.APIKey
	if keyID != "" {
		key, err = db.RevokeAPIKey(ctx, keyID, time.Now())
	} else {
		key, err = db.RevokeAPIKeyByPrefix(ctx, prefix, time.Now())
	}
	if err != nil {
		if checkout.ErrorCode(err) == checkout.ENOTFOUND {
			return fmt.Errorf("merchant keys revoke: no such key")
		}
		return err
	}
	return printJSON(stdout, map[string]string{"key_id": key.ID, "merchant_id": key.MerchantID,
		"prefix": key.Prefix, "revoked_at": key.RevokedAt.UTC().Format(time.RFC3339)})
}

// paramOf and messageOf read a validation error's parameter and message.
func paramOf(err error) string {
	if e, ok := err.(*checkout.Error); ok && e.Param != "" {
		return e.Param
	}
	return "?"
}

func messageOf(err error) string {
	if e, ok := err.(*checkout.Error); ok {
		return e.Message
	}
	return err.Error()
}
