"""Operations: the balancer's own routes under /balancer/."""
