"""The rooms service: persistent, configurable rooms, event-sourced."""
