"""Tools for people: the booth designer and rig preview, the HTML report, contact sheets and the damage gallery."""
