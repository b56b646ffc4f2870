{#- A 1-5 score from the row's percent rank in `order_by` (5 = top fifth). Ties share the lower
    score, so a value most rows have (one purchase day) does not score as the best. -#}
{% macro rank_score(order_by) -%}
    least(5, 1 + floor(5 * percent_rank() over (order by {{ order_by }})))::integer
{%- endmacro %}
