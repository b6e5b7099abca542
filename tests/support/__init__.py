"""What the tests share: tokens and signatures built by hand, the app called directly, the
protocol in memory, waiting, the browser, a synthetic decision log, the mutation report."""
