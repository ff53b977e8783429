package actors_test

import (
	"testing"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
