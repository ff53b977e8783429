package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildCheckoutd builds the checkoutd binary into dir and returns its path.
func BuildCheckoutd(ctx context.Context, moduleDir, dir string) (string, error) {
	bin := filepath.Join(dir, "checkoutd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/checkoutd")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/checkoutd: %w\n%s", err, out)
	}
	return bin, nil
}

// Proc is a child process in its own process group, killed with the whole
// group. Its output goes to a log file.
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer
}

// lockedBuffer keeps the last output of a process, for failure reports.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		keep := b.buf.Bytes()[b.buf.Len()-256<<10:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return tail(b.buf.Bytes(), n)
}

// StartProc starts bin with args in a process group of its own. The child
// gets SIGKILL if this process dies first.
func StartProc(name, bin string, args []string, env []string, stdout io.Writer) (*Proc, error) {
	p := &Proc{name: name, done: make(chan struct{}), log: &lockedBuffer{}}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = p.log
	cmd.Stdout = p.log
	if stdout != nil {
		cmd.Stdout = io.MultiWriter(p.log, stdout)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmd = cmd
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is the end of the process's output.
func (p *Proc) Output() string { return p.log.Tail(8000) }

// StartSandbox runs `checkoutd sandbox` on a free port and returns it with
// its URL.
func StartSandbox(bin string, seed uint64) (*Proc, string, error) {
	pr, pw := io.Pipe()
	p, err := StartProc("sandbox", bin, []string{"sandbox", "--addr", "127.0.0.1:0", "--seed", strconv.FormatUint(seed, 10)}, nil, pw)
	if err != nil {
		return nil, "", err
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "http://"); i >= 0 && strings.Contains(line, "sandbox Stellar network") {
				select {
				case urlc <- strings.Fields(line[i:])[0]:
				default:
				}
			}
		}
	}()
	go func() {
		<-p.done
		pw.Close()
	}()
	select {
	case u := <-urlc:
		return p, u, nil
	case <-p.done:
		return nil, "", fmt.Errorf("sandbox exited: %s", p.Output())
	case <-time.After(30 * time.Second):
		p.Kill()
		return nil, "", errors.New("sandbox printed no address within 30 s")
	}
}

// ServeConfig is how a checkoutd serve process is run.
type ServeConfig struct {
	Bin, DatabaseURL, HorizonURL string
	Addr                         string // 127.0.0.1:port, fixed across restarts
	// Args are added to serve's arguments, such as the cluster flags.
	Args []string
}

// Node is one `checkoutd serve` process that can be killed and restarted on
// the same address.
type Node struct {
	cfg ServeConfig

	mu       sync.Mutex
	proc     *Proc
	starts   int
	kills    int
	lastLogs string
}

// NewNode picks a free port for a serve process; Start runs it.
func NewNode(cfg ServeConfig) (*Node, error) {
	if cfg.Addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cfg.Addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	return &Node{cfg: cfg}, nil
}

// URL is the node's API base URL.
func (n *Node) URL() string { return "http://" + n.cfg.Addr }

// Start runs serve. It does not wait for it to be healthy.
func (n *Node) Start() error {
	args := []string{"serve",
		"--database-url", n.cfg.DatabaseURL,
		"--network", "sandbox", "--horizon-url", n.cfg.HorizonURL,
		"--http-addr", n.cfg.Addr,
		"--webhooks-allow-insecure", "--webhooks-allowlist", "127.0.0.1",
		"--api-rate-limit", "100000", "--api-rate-burst", "100000",
		"--recovery-interval", "2s",
		"--shutdown-timeout", "10s",
		"--log-level", "warn", "--log-format", "json"}
	args = append(args, n.cfg.Args...)
	p, err := StartProc("checkoutd", n.cfg.Bin, args, nil, nil)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.starts++
	n.mu.Unlock()
	return nil
}

// Kill sends SIGKILL to the serve process, if it runs.
func (n *Node) Kill() {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return
	}
	alive := !p.Exited()
	p.Kill()
	n.mu.Lock()
	if alive {
		n.kills++
	}
	n.lastLogs = p.Output()
	n.mu.Unlock()
}

// Stop ends the process with SIGTERM (a graceful shutdown), and SIGKILL
// after 15 s.
func (n *Node) Stop() {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
	n.mu.Lock()
	n.lastLogs = p.Output()
	n.mu.Unlock()
}

// Kills is how many times a running process was killed.
func (n *Node) Kills() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kills
}

// Exited reports whether the current process ended by itself.
func (n *Node) Exited() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false, ""
	}
	if n.proc.Exited() {
		return true, n.proc.Output()
	}
	return false, ""
}

// Logs is the end of the current (or last) process's output.
func (n *Node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return n.proc.Output()
	}
	return n.lastLogs
}

// WaitHealthy polls /healthz until it answers 200.
func (n *Node) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if exited, out := n.Exited(); exited {
			return fmt.Errorf("checkoutd exited: %s", tail([]byte(out), 3000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("checkoutd at %s not healthy: %w\n%s", n.URL(), ctx.Err(), tail([]byte(n.Logs()), 3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
