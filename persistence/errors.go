package persistence

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	checkout "github.com/checkoutd/checkoutd"
)

// interpretError turns pgx and Postgres errors into domain errors, so that
// no pgx type or SQLSTATE leaves this package.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return checkout.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23505": // unique_violation
		switch pgErr.ConstraintName {
		case "sessions_receiving_account_memo_key":
			return checkout.ErrMemoTaken
		case "payments_operation_id_key":
			return checkout.ErrAlreadyApplied
		}
		return &checkout.Error{Code: checkout.ECONFLICT, Reason: "duplicate", Message: "the record already exists (" + pgErr.ConstraintName + ")"}
	case "23514": // check_violation
		return &checkout.Error{Code: checkout.EINVALID, Reason: "constraint_violated", Message: "the change breaks a rule of the ledger (" + pgErr.ConstraintName + ")"}
	case "23503": // foreign_key_violation
		return &checkout.Error{Code: checkout.EINVALID, Reason: "reference_missing", Message: "the change refers to a record that does not exist (" + pgErr.ConstraintName + ")"}
	case "23502": // not_null_violation
		return &checkout.Error{Code: checkout.EINVALID, Reason: "value_missing", Message: "a required value is missing (" + pgErr.ColumnName + ")"}
	}
	return fmt.Errorf("postgres %s: %w", pgErr.Code, err)
}
