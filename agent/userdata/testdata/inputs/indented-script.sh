

    #!/bin/sh
    echo indented heredoc
