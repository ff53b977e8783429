package chaos

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyMode is what a Proxy does to the traffic through it.
type ProxyMode int

// Proxy modes.
const (
	// ProxyPass forwards everything at once.
	ProxyPass ProxyMode = iota
	// ProxyLatency delays every chunk, each way, by the latency.
	ProxyLatency
	// ProxyBlackhole holds every byte, and every new connection, until the
	// mode changes: the other side seems to hang.
	ProxyBlackhole
	// ProxyReset resets every connection, open or new.
	ProxyReset
)

func (m ProxyMode) String() string {
	return [...]string{"pass", "latency", "blackhole", "reset"}[m]
}

// Proxy is a TCP proxy on 127.0.0.1 to one target, whose mode a test
// changes at any time.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    ProxyMode
	latency time.Duration
	changed chan struct{} // closed and replaced when the mode changes
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// StartProxy listens on a free port of 127.0.0.1 and forwards to target.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Set changes the mode; latency is for ProxyLatency.
func (p *Proxy) Set(mode ProxyMode, latency time.Duration) {
	p.mu.Lock()
	p.mode, p.latency = mode, latency
	close(p.changed)
	p.changed = make(chan struct{})
	var reset []net.Conn
	if mode == ProxyReset {
		for c := range p.conns {
			reset = append(reset, c)
		}
	}
	p.mu.Unlock()
	for _, c := range reset {
		abort(c)
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
}

// abort closes c with a reset rather than a FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// gate waits until a chunk may pass: it sleeps the latency, holds while
// black-holed, and reports false when the connection is to be reset or the
// proxy closes.
func (p *Proxy) gate() bool {
	for {
		p.mu.Lock()
		mode, latency, changed, closed := p.mode, p.latency, p.changed, p.closed
		p.mu.Unlock()
		switch {
		case closed || mode == ProxyReset:
			return false
		case mode == ProxyBlackhole:
			<-changed
			continue
		case mode == ProxyLatency && latency > 0:
			select {
			case <-time.After(latency):
			case <-changed:
				continue
			}
		}
		return true
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.untrack(c)
	if !p.gate() {
		abort(c)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		abort(c)
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.gate() {
					abort(dst)
					abort(src)
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					abort(src)
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.CloseWrite()
					}
				} else {
					abort(dst)
				}
				return
			}
		}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}
