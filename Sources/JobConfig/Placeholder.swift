public enum JobConfigPlaceholder {}
