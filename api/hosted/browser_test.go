package hosted_test

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/stellar/sep7"
)

var writeScreenshots = flag.Bool("screenshots", false,
	"write the browser test's screenshots to docs/screenshots/")

// chromium returns the path of Debian's chromium. Without it the browser
// test skips, except in CI, where .ci/run installs it and a skip would
// hide a missing install.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	const msg = "chromium is not installed (apt-get install -y chromium): skipping the browser test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg[:strings.Index(msg, ":")] + ", and CI=true requires it")
	}
	t.Skip(msg)
	return ""
}

// browser starts headless chromium with a fresh profile and returns its
// context; the browser stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(cancel)
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// console collects what the page writes to the console, so that a script
// error or a CSP violation fails the test.
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (c *console) watch(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
}

func (c *console) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		// favicon.ico 404s are the test server's, not the page's.
		if (m.Type == chromedp.ConsoleError || m.IsException() || strings.Contains(m.Text, "Content Security Policy")) &&
			!strings.Contains(m.URL, "favicon") {
			out = append(out, m.String())
		}
	}
	return out
}

func TestBrowserCheckout(t *testing.T) {
	ctx := browser(t)
	e := newEnv(t)
	s := e.newSession(checkout.SessionParams{Amount: 250_000_000, MemoType: checkout.MemoText,
		SuccessURL: e.srv.URL + "/thanks?order=4711"})
	var cons console
	cons.watch(ctx)

	step := func(name string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v\nconsole: %v", name, err, cons.problems())
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	waitText := func(sel, want string) {
		t.Helper()
		expr := `(document.querySelector(` + jsString(sel) + `) || {}).textContent && ` +
			`document.querySelector(` + jsString(sel) + `).textContent.includes(` + jsString(want) + `)`
		step("wait for "+sel+" to say "+want, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
	}

	step("open the page", chromedp.Navigate(e.srv.URL+"/c/"+s.ID), chromedp.WaitVisible(chromedp.CSS("#qr")))
	if got := text("#merchant-name"); got != "Corner Bakery" {
		t.Errorf("merchant name %q", got)
	}
	if got := text("#amount") + " " + text("#asset-code"); got != "25.00 XLM" {
		t.Errorf("amount %q, want 25.00 XLM", got)
	}
	if got := text("#memo"); got != s.Memo {
		t.Errorf("memo %q, want %q", got, s.Memo)
	}
	if got := text("#destination"); got != s.ReceivingAccount {
		t.Errorf("destination %q, want %q", got, s.ReceivingAccount)
	}
	waitText("#status-text", "Waiting for your payment")
	// The countdown runs in JavaScript: "29:59" or so, never the raw time.
	if got := text("#countdown"); !strings.Contains(got, ":") || strings.Contains(got, "T") {
		t.Errorf("countdown %q", got)
	}

	// The QR as the browser drew it decodes to the session's SEP-7 URI.
	qrPNG, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#qr")))
	if err != nil {
		t.Fatal(err)
	}
	want, err := sep7.ForSession(s, s.Amount, e.net.Passphrase())
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeQR(t, qrPNG); got != want.String() {
		t.Errorf("QR decodes to\n%s\nwant\n%s", got, want)
	}
	screenshot(t, ctx, "checkout-open.png")

	// A marker that a reload would wipe: every update below must keep it.
	step("mark the page", chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))

	e.pay(s, 100_000_000)
	waitText("#status-text", "Partially paid")
	step("progress shows", chromedp.WaitVisible(chromedp.CSS("#progress")))
	if got := text("#remaining"); got != "15.00" {
		t.Errorf("remaining %q, want 15.00", got)
	}
	screenshot(t, ctx, "checkout-partial.png")

	step("pay with the sandbox wallet", chromedp.Click(chromedp.CSS("#sandbox-pay")))
	waitText("#status-text", "Paid")
	still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`))
	if err != nil || !still {
		t.Errorf("the page reloaded to show the payment (marker %v, %v)", still, err)
	}
	screenshot(t, ctx, "checkout-paid.png")

	// The navigation itself would end a Poll, so ask for the location.
	var loc string
	for deadline := time.Now().Add(10 * time.Second); loc != e.srv.URL+"/thanks?order=4711"; {
		if time.Now().After(deadline) {
			t.Fatalf("no redirect to success_url: location %q", loc)
		}
		time.Sleep(100 * time.Millisecond)
		loc, _ = chromedp.Run(ctx, chromedp.Location())
	}
	step("the shop's page shows", chromedp.WaitVisible(chromedp.CSS("#thanks")))
	got := e.waitSession(s.ID, func(s checkout.Session) bool { return s.Status == checkout.StatusComplete })
	if got.PaymentStatus != checkout.PaymentPaid {
		t.Errorf("session %s/%s", got.Status, got.PaymentStatus)
	}

	// Without a success_url the paid page stays put.
	s2 := e.newSession(checkout.SessionParams{Amount: 10_000_000})
	step("open a session without success_url", chromedp.Navigate(e.srv.URL+"/c/"+s2.ID),
		chromedp.WaitVisible(chromedp.CSS("#qr")), chromedp.Evaluate[chromedp.Void](`window.__noReload = true`),
		chromedp.Click(chromedp.CSS("#sandbox-pay")))
	waitText("#status-text", "Paid. Thank you!")
	time.Sleep(2500 * time.Millisecond) // longer than the redirect delay
	if got := text("#status-text"); got != "Paid. Thank you!" {
		t.Errorf("status %q: a page without success_url promises a redirect", got)
	}
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__noReload === true`)); err != nil || !still {
		t.Errorf("a page without success_url navigated away (%v)", err)
	}

	if p := cons.problems(); len(p) > 0 {
		t.Errorf("console errors or CSP violations:\n%s", strings.Join(p, "\n"))
	}

	step("open an unknown session", chromedp.Navigate(e.srv.URL+"/c/"+checkout.NewID(checkout.PrefixSession)))
	if h := text("h1"); h != "Checkout not found" {
		t.Errorf("404 page heading %q", h)
	}
	screenshot(t, ctx, "checkout-not-found.png")
}

func decodeQR(t *testing.T, b []byte) string {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode the QR screenshot: %v", err)
	}
	return res.GetText()
}

// screenshot captures the whole page; with -screenshots it is written to
// docs/screenshots/ as the page's documentation.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100 makes a PNG; less, a JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := t.TempDir()
	if *writeScreenshots {
		dir = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
