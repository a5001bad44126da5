"""The overseer's approvals page and the pages behind approval links."""
