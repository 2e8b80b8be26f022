"""The database side of a swap: preflight, inventory of unmanaged objects, DDL re-targeting,
write backlog, search_path switch, parity and verification. Reads unless a name says it writes,
and never writes to a mapped table (Heroku Connect would send that write to Salesforce)."""
