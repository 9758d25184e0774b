"""ROS-free core: world model, losses, costs, planners, safety, episode store."""
