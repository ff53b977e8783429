package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// errNoServer is the one-line hint shown when there is no server to test
// against.
var errNoServer = errors.New("no PostgreSQL server binaries found: " +
	"install them with `apt-get install postgresql` or set DATABASE_URL")

const tempPrefix = "checkoutd-pgtest-"

// cluster is a throwaway Postgres cluster in a temporary directory, run by
// this test binary and removed when it ends.
type cluster struct {
	dir    string // data in dir/data, unix socket and log in dir
	dsn    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the postmaster has exited
}

// startCluster creates a cluster with initdb and starts a postmaster on a
// free port of 127.0.0.1. Running as root, both run as the postgres user,
// because Postgres refuses to run as root.
func startCluster(ctx context.Context) (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}

	// The postgres user must be able to reach the directory, which it cannot
	// under, say, /root; /tmp is always traversable.
	base := os.TempDir()
	if cred != nil {
		base = "/tmp"
	}
	removeStaleClusters(base)
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	// A unix socket path is limited to 107 bytes.
	if len(dir)+len("/.s.PGSQL.65535") > 107 {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("temporary directory %s is too long for a unix socket path; set TMPDIR=/tmp", dir)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("give cluster directory to the postgres user: %w", err)
		}
	}

	c := &cluster{dir: dir}
	if err := c.initdb(ctx, bin, cred); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the free port before the postmaster binds it,
	// so try a few.
	for attempt := 1; ; attempt++ {
		retry, err := c.start(ctx, bin, cred)
		if err == nil {
			return c, nil
		}
		if !retry || attempt == 5 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (c *cluster) initdb(ctx context.Context, bin string, cred *syscall.Credential) error {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"--pgdata", filepath.Join(c.dir, "data"),
		"--username", "postgres",
		"--auth", "trust",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync")
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", c.dir, err, out)
	}
	return nil
}

// start runs the postmaster and waits until it accepts connections. retry
// reports whether the failure was a port taken in the meantime.
func (c *cluster) start(ctx context.Context, bin string, cred *syscall.Credential) (retry bool, err error) {
	port, err := freePort()
	if err != nil {
		return false, err
	}
	logPath := filepath.Join(c.dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return false, fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(c.dir, "data"),
		"-p", strconv.Itoa(port),
		"-k", c.dir,
		"-c", "listen_addresses=127.0.0.1",
		// Durability is worthless for a cluster deleted at exit.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200")
	cmd.Dir = c.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// If this test binary dies without running Main's cleanup (killed
		// by a timeout or a signal), the postmaster shuts down instead of
		// running forever. The next run removes the directory.
		Pdeathsig: syscall.SIGQUIT,
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited
	c.dsn = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("already in use")),
				fmt.Errorf("postgres exited during startup, log %s:\n%s", logPath, tail(log))
		case <-ctx.Done():
			_ = c.stop()
			return false, fmt.Errorf("wait for postgres to start: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if ready(ctx, c.dsn) {
			return false, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			_ = c.stop()
			return false, fmt.Errorf("postgres did not accept connections within a minute, log:\n%s", tail(log))
		}
	}
}

// stop shuts the postmaster down fast and removes the cluster's directory.
func (c *cluster) stop() error {
	var err error
	if c.cmd != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
			err = errors.New("postgres did not shut down within 30s and was killed")
		}
	}
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove cluster directory: %w", rmErr))
	}
	return err
}

func ready(ctx context.Context, dsn string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	conn.Close(ctx)
	return true
}

// findBinaries returns the directory of initdb and postgres: the one on PATH
// if there is one, else the newest of Debian's /usr/lib/postgresql/*/bin.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Follow a symlink such as /usr/local/bin/initdb to the directory
		// that also holds postgres.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if dir := filepath.Dir(p); isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return majorVersion(b) - majorVersion(a) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errNoServer
}

// majorVersion turns /usr/lib/postgresql/15/bin into 150 and .../9.6/bin
// into 96, so that newer versions sort higher.
func majorVersion(binDir string) int {
	v := filepath.Base(filepath.Dir(binDir))
	major, minor, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	m, _ := strconv.Atoi(minor)
	return n*10 + m
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential returns the postgres user's credential when running as
// root, and nil otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, the throwaway cluster must run as the postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// removeStaleClusters removes the directories of throwaway clusters whose
// test binary and postmaster are both gone, left by runs that were killed.
func removeStaleClusters(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, tempPrefix+"*"))
	for _, dir := range dirs {
		owner, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(dir), tempPrefix), "-")
		pid, err := strconv.Atoi(owner)
		if err != nil || alive(pid) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && alive(pm) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func tail(b []byte) string {
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
