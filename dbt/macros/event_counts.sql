{#- Events per type and the revenue of purchases, as aggregate columns named views, carts,
    removes, purchases and revenue_amount (currency). `kinds` picks the counts. -#}
{% macro event_counts(kinds=['views', 'carts', 'removes', 'purchases']) -%}
    {%- set event_types = {'views': 'view', 'carts': 'cart', 'removes': 'remove_from_cart',
                           'purchases': 'purchase'} -%}
    {%- for kind in kinds %}
    count(*) filter (where event_type = '{{ event_types[kind] }}') as {{ kind }},
    {%- endfor %}
    coalesce(sum(price) filter (where event_type = 'purchase'), 0) as revenue_amount
{%- endmacro %}

{#- Roll counts up a level: sum(column) for each column, counts kept as bigint. -#}
{% macro summed(columns) -%}
    {%- for column in columns %}
    sum({{ column }}){{ '' if column.endswith('_amount') else '::bigint' }} as {{ column }}
    {{- ',' if not loop.last }}
    {%- endfor %}
{%- endmacro %}
