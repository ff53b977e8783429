package persistence

import (
	"context"
	"fmt"

	checkout "github.com/checkoutd/checkoutd"
)

// CreateMerchant inserts a merchant.
func (db *DB) CreateMerchant(ctx context.Context, m checkout.Merchant) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO merchants (id, name, account, created_at) VALUES ($1, $2, $3, $4)`,
		m.ID, m.Name, m.Account, m.CreatedAt)
	if err != nil {
		return fmt.Errorf("create merchant: %w", interpretError(err))
	}
	return nil
}

// GetMerchant loads a merchant, or returns checkout.ErrNotFound.
func (db *DB) GetMerchant(ctx context.Context, id string) (checkout.Merchant, error) {
	var m checkout.Merchant
	err := db.pool.QueryRow(ctx, `SELECT id, name, account, created_at FROM merchants WHERE id = $1`, id).
		Scan(&m.ID, &m.Name, &m.Account, &m.CreatedAt)
	if err != nil {
		return checkout.Merchant{}, fmt.Errorf("get merchant %s: %w", id, interpretError(err))
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

// MerchantIDsByAccount lists the merchants that receive on an account. An
// unmatched payment to the account is raised to each of them.
func (db *DB) MerchantIDsByAccount(ctx context.Context, account string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT id FROM merchants WHERE account = $1 ORDER BY id`, account)
	if err != nil {
		return nil, fmt.Errorf("merchants of %s: %w", account, interpretError(err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("merchants of %s: %w", account, interpretError(err))
		}
		ids = append(ids, id)
	}
	return ids, interpretError(rows.Err())
}
