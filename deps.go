package checkout
import (
 _ "github.com/asynkron/protoactor-go/actor"
 _ "github.com/stellar/go-stellar-sdk/clients/horizonclient"
 _ "github.com/stellar/go-stellar-sdk/txnbuild"
 _ "github.com/stellar/go-stellar-sdk/strkey"
 _ "github.com/jackc/pgx/v5/pgxpool"
 _ "github.com/gorilla/mux"
 _ "github.com/prometheus/client_golang/prometheus"
)
