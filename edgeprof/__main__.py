from edgeprof.cli import main

raise SystemExit(main())
