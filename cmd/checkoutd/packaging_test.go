package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// There is no Docker engine where tests run, so the packaging is checked
// by reading it: the compose file parses and wires migrate before serve,
// the Dockerfile keeps its promises, and every CHECKOUTD_ variable either
// sets is one serve knows.

// knownEnv is every environment variable serve and healthcheck read.
func knownEnv(t *testing.T) map[string]bool {
	known := map[string]bool{"CHECKOUTD_HEALTHCHECK_URL": true, "CHECKOUTD_HEALTHCHECK_TIMEOUT": true}
	for _, env := range serveFlags(t) {
		known[env] = true
	}
	return known
}

func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
			Healthcheck map[string]any `yaml:"healthcheck"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	pg, migrate, app := compose.Services["postgres"], compose.Services["migrate"], compose.Services["checkoutd"]
	if pg.Image == "" || pg.Healthcheck == nil {
		t.Errorf("postgres: image %q, healthcheck %v", pg.Image, pg.Healthcheck)
	}
	if !slices.Equal(pg.Command, []string{"postgres", "-c", "autovacuum_naptime=" + devAutovacuumNaptime}) {
		t.Errorf("postgres: command %v, want autovacuum every %s as dev has it", pg.Command, devAutovacuumNaptime)
	}
	if !slices.Equal(migrate.Command, []string{"migrate"}) || migrate.DependsOn["postgres"].Condition != "service_healthy" {
		t.Errorf("migrate: command %v, depends on %v", migrate.Command, migrate.DependsOn)
	}
	if !slices.Equal(app.Command, []string{"serve"}) || app.DependsOn["migrate"].Condition != "service_completed_successfully" {
		t.Errorf("checkoutd: command %v, depends on %v", app.Command, app.DependsOn)
	}
	if migrate.Build == nil || migrate.Image != app.Image {
		t.Errorf("migrate builds the image checkoutd runs: build %v, images %q and %q", migrate.Build, migrate.Image, app.Image)
	}
	known := knownEnv(t)
	for name, svc := range map[string]map[string]string{"migrate": migrate.Environment, "checkoutd": app.Environment} {
		if !strings.HasPrefix(svc["DATABASE_URL"], "postgres://") || !strings.Contains(svc["DATABASE_URL"], "@postgres:5432/") {
			t.Errorf("%s: DATABASE_URL %q", name, svc["DATABASE_URL"])
		}
		for k := range svc {
			if !known[k] {
				t.Errorf("%s sets %s, which checkoutd does not read", name, k)
			}
		}
	}
	if app.Environment["CHECKOUTD_HTTP_ADDR"] != "0.0.0.0:8080" {
		t.Errorf("checkoutd listens on %q in the container", app.Environment["CHECKOUTD_HTTP_ADDR"])
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	// Instructions, with continuation lines joined.
	var lines []string
	for line := range strings.SplitSeq(strings.ReplaceAll(df, "\\\n", " "), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	var froms []string
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
		}
	}
	if len(froms) != 2 || !strings.HasSuffix(froms[0], " AS build") || !strings.Contains(froms[1], "distroless/static") {
		t.Errorf("want a build stage and a distroless/static final stage: %v", froms)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 .*go build .*-X main\.version=\$\{VERSION\}.* \./cmd/checkoutd`),
		regexp.MustCompile(`(?m)^COPY --from=build `),
		regexp.MustCompile(`(?m)^USER nonroot`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/checkoutd", "healthcheck"`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/checkoutd"\]`),
		regexp.MustCompile(`(?m)^CMD \["serve"\]`),
		regexp.MustCompile(`(?m)^EXPOSE 8080`),
	} {
		if !want.MatchString(strings.Join(lines, "\n")) {
			t.Errorf("Dockerfile has no line matching %s", want)
		}
	}
	known := knownEnv(t)
	for _, m := range regexp.MustCompile(`(?m)^ENV (\w+)=`).FindAllStringSubmatch(strings.Join(lines, "\n"), -1) {
		if !known[m[1]] {
			t.Errorf("Dockerfile sets %s, which checkoutd does not read", m[1])
		}
	}

	// The build context keeps what the binary embeds.
	ignore, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"go.mod", "go.sum", "cmd/checkoutd/main.go", "persistence/migrations/0001_init.sql",
		"api/openapi.json", "api/hosted/assets/page.html"} {
		for pattern := range strings.SplitSeq(string(ignore), "\n") {
			pattern = strings.TrimSpace(pattern)
			if pattern == "" || strings.HasPrefix(pattern, "#") {
				continue
			}
			for p := path; p != "."; p = filepath.Dir(p) {
				if ok, _ := filepath.Match(strings.TrimPrefix(pattern, "**/"), p); ok {
					t.Errorf(".dockerignore's %q leaves %s out of the build", pattern, path)
				}
			}
		}
	}
}
