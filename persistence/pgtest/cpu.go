package pgtest

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcessCPU reads /proc/<pid>/stat: the process's command name and the
// user and system time it has used. Benchmarks use it to charge a run
// with the CPU of the Postgres processes serving it, which unlike wall
// time hardly depends on what else the machine runs; it needs Postgres
// on the same machine. ok is false where the file cannot be read (another
// OS, a process gone).
func ProcessCPU(pid int) (comm string, cpu time.Duration, ok bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", 0, false
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	const hz = 100 // USER_HZ on Linux
	return s[open+1 : end], time.Duration(user+sys) * time.Second / hz, true
}
