package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

// flags is a flag set whose every flag has an environment twin: the
// environment sets the default, and the command line wins.
type flags struct {
	*flag.FlagSet
	errs []error
}

func newFlags(name string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &flags{FlagSet: fs}
}

func (f *flags) string(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	f.StringVar(p, name, def, usage+" ($"+env+")")
}

func (f *flags) bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: not a boolean", env, v))
		}
		def = b
	}
	f.BoolVar(p, name, def, usage+" ($"+env+")")
}

func (f *flags) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: not a duration", env, v))
		}
		def = d
	}
	f.DurationVar(p, name, def, usage+" ($"+env+")")
}

// parse parses args and reports a bad flag or environment value as a usage
// error.
func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return &usageError{err: err}
	}
	if len(f.errs) > 0 {
		return &usageError{err: f.errs[0]}
	}
	if f.NArg() > 0 {
		return usagef("%s: unexpected argument %q", f.Name(), f.Arg(0))
	}
	return nil
}
