-- Fleet-wide single flight: the replica making a variant holds its row until the variant is in
-- the store; the others wait for it there. A holder that dies stops renewing `expires_at`, and
-- the next replica to ask takes the claim over. `charged_on` is the UTC day the owner was
-- charged for this variant, so a take-over never charges twice.
CREATE TABLE variant_claims (
    variant_key TEXT        PRIMARY KEY,
    holder      TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    charged_on  DATE
);
CREATE INDEX variant_claims_expires_at ON variant_claims (expires_at);
