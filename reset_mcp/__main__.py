from reset_mcp.cli import main

raise SystemExit(main())
