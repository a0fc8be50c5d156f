"""notification-service: tells users what happened; fed by events only."""
